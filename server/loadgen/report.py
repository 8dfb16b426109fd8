"""Merge the workers' samples into the JSON report and the human summary."""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from dataclasses import fields
from typing import Any

from server.loadgen.student import Samples

__all__ = ["ResourceSampler", "build_report", "format_summary", "merge", "percentiles"]

LATENCIES = (
    "edit_to_ack_ms",
    "edit_to_hints_ms",
    "edit_to_hints_after_debounce_ms",
    "server_edit_to_hints_ms",
    "server_analysis_ms",
    "server_debounce_lag_ms",
    "server_queue_ms",
    "server_inference_ms",
    "edit_to_observer_ms",
)


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """Nearest-rank p50/p95/p99 (None when there are no samples)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 2)

    return {
        "n": len(ordered),
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": round(ordered[-1], 2),
        "mean": round(sum(ordered) / len(ordered), 2),
    }


def windows(values: list[float], at: list[float], window_s: float) -> list[dict[str, Any]]:
    """p50/p99 per consecutive window of ``window_s`` seconds (for soak stability)."""
    if not values:
        return []
    t0 = min(at)
    buckets: dict[int, list[float]] = {}
    for v, t in zip(values, at, strict=True):
        buckets.setdefault(int((t - t0) // window_s), []).append(v)
    out = []
    for k in sorted(buckets):
        p = percentiles(buckets[k])
        out.append({"t_s": round(k * window_s), "n": p["n"], "p50": p["p50"], "p99": p["p99"]})
    return out


def samples_to_dict(samples: Samples) -> dict[str, Any]:
    # not dataclasses.asdict: it rebuilds a Counter from its items and garbles it
    out: dict[str, Any] = {}
    for f in fields(Samples):
        value = getattr(samples, f.name)
        out[f.name] = dict(value) if isinstance(value, Counter) else value
    return out


def merge(parts: list[dict[str, Any]]) -> Samples:
    total = Samples()
    for part in parts:
        for f in fields(Samples):
            value = part[f.name]
            current = getattr(total, f.name)
            if isinstance(current, Counter):
                current.update(value)
            elif isinstance(current, list):
                current.extend(value)
            else:
                setattr(total, f.name, current + value)
    return total


class ResourceSampler:
    """CPU and RSS of the server process, sampled once a second on a thread."""

    def __init__(self, pid: int | None, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.cpu: list[float] = []
        self.rss: list[int] = []
        self.host_cpu: list[float] = []  # whole machine, % of all cores (other work shows here)
        self.cpu_start: float | None = None
        self.cpu_end: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.proc: Any = None

    def _cpu_seconds(self) -> float | None:
        try:
            t = self.proc.cpu_times()
            return float(t.user + t.system)
        except Exception:
            return None

    def start(self) -> None:
        if self.pid is None:
            return
        try:
            import psutil  # type: ignore[import-untyped]

            self.proc = psutil.Process(self.pid)
            self.proc.cpu_percent(None)
            psutil.cpu_percent(None)
            self.cpu_start = self._cpu_seconds()
            self.rss.append(self.proc.memory_info().rss)
        except Exception:
            self.proc = None
            return
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                import psutil

                self.host_cpu.append(psutil.cpu_percent(None))
                self.cpu.append(self.proc.cpu_percent(None))
                self.rss.append(self.proc.memory_info().rss)
                self.cpu_end = self._cpu_seconds()
            except Exception:  # the server died (fault tests kill it on purpose)
                continue

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        if self.proc is None:
            return {"pid": self.pid, "measured": False}
        end = self._cpu_seconds() or self.cpu_end
        mb = 1024 * 1024
        host = self.host_cpu
        return {
            "host_cpu_percent_mean": round(sum(host) / len(host), 1) if host else None,
            "host_cores": os.cpu_count(),
            "host_loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "pid": self.pid,
            "measured": True,
            "cpu_percent_mean": round(sum(self.cpu) / len(self.cpu), 1) if self.cpu else None,
            "cpu_percent_max": round(max(self.cpu), 1) if self.cpu else None,
            "cpu_seconds": None
            if end is None or self.cpu_start is None
            else round(end - self.cpu_start, 2),
            "rss_mb_start": round(self.rss[0] / mb, 1) if self.rss else None,
            "rss_mb_end": round(self.rss[-1] / mb, 1) if self.rss else None,
            "rss_mb_max": round(max(self.rss) / mb, 1) if self.rss else None,
            "rss_mb_series": [round(r / mb, 1) for r in self.rss[:: max(1, len(self.rss) // 120)]],
        }


def build_report(
    samples: Samples,
    *,
    config: dict[str, Any],
    duration_s: float,
    server: dict[str, Any],
    loadgen_cpu_s: float,
) -> dict[str, Any]:
    report: dict[str, Any] = dict(config)
    report.update(
        students=config["students"],
        teachers=config["teachers"],
        duration_s=round(duration_s, 2),
        students_connected=samples.connected,
        edits_sent=samples.edits_sent,
        edits_acked=samples.edits_acked,
        edits_per_s=round(samples.edits_acked / duration_s, 1) if duration_s > 0 else 0.0,
        chars_typed=samples.chars_typed,
        hints_received=samples.hints_received,
        scores_received=samples.scores_received,
        versions_hinted=samples.versions_hinted,
        hints_per_acked_version=round(samples.versions_hinted / samples.edits_acked, 3)
        if samples.edits_acked
        else None,
        scores_per_hints=round(samples.scores_received / samples.hints_received, 3)
        if samples.hints_received
        else None,
        errors=dict(samples.errors),
        error_count=sum(samples.errors.values()),
        connection_events=dict(samples.events),
        reconnects=samples.reconnects,
        lost_edits=samples.lost_edits,
        unacked_at_end=samples.unacked_at_end,
        mismatches=samples.mismatches[:50],
        mismatched_documents=len(samples.mismatches),
        observer_messages=samples.observer_messages,
        observer_mismatches=samples.observer_mismatches,
        keystrokes=dict(samples.keystroke_kinds),
        server=server,
        loadgen_cpu_seconds=round(loadgen_cpu_s, 2),
    )
    for name in LATENCIES:
        report[name] = percentiles(getattr(samples, name))
    window = 60.0 if duration_s >= 300 else 10.0
    report["window_s"] = window
    report["server_analysis_ms_by_window"] = windows(
        samples.server_analysis_ms, samples.server_analysis_at, window
    )
    report["edit_to_ack_ms_by_window"] = windows(
        samples.edit_to_ack_ms, samples.edit_to_ack_at, window
    )
    cpu_s = server.get("cpu_seconds")
    report["server_cpu_ms_per_edit"] = (
        round(1000 * cpu_s / samples.edits_acked, 3) if cpu_s and samples.edits_acked else None
    )
    report["ok"] = (
        samples.lost_edits == 0
        and not samples.mismatches
        and samples.connected == config["students"]
    )
    report["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return report


def format_summary(report: dict[str, Any]) -> str:
    def row(name: str, label: str) -> str:
        p = report[name]
        if not p["n"]:
            return f"  {label:<38} (no samples)"
        return (
            f"  {label:<38} p50 {p['p50']:>8.1f}  p95 {p['p95']:>8.1f}  p99 {p['p99']:>8.1f}"
            f"  max {p['max']:>8.1f}  n={p['n']}"
        )

    server = report["server"]
    lines = [
        f"inkstone loadgen: {report['students']} students ({report['students_connected']} "
        f"connected), {report['teachers']} teachers, {report['duration_s']:.0f} s, "
        f"lang={report['lang']}, speed={report['speed']}, seed={report['seed']}",
        f"  edits: {report['edits_sent']} sent, {report['edits_acked']} acked "
        f"({report['edits_per_s']}/s); hints {report['hints_received']}, "
        f"scores {report['scores_received']}; hints per acked version "
        f"{report['hints_per_acked_version']}",
        "  latency (ms):",
        row("edit_to_ack_ms", "edit → ack (client)"),
        row("edit_to_hints_ms", "edit → hints (client, incl. debounce)"),
        row("edit_to_hints_after_debounce_ms", "edit → hints (client, − debounce due)"),
        row("server_edit_to_hints_ms", "server edit → hints (since_edit)"),
        row("server_analysis_ms", "server analysis (debounce excluded)"),
        row("server_debounce_lag_ms", "server debounce lag (if reported)"),
        row("server_queue_ms", "server model queue"),
        row("server_inference_ms", "server inference"),
        row("edit_to_observer_ms", "edit → teacher update"),
        f"  errors: {report['errors'] or 'none'}; connection events: "
        f"{report['connection_events'] or 'none'}; reconnects {report['reconnects']}",
    ]
    if server.get("measured"):
        lines.append(
            f"  server pid {server['pid']}: CPU mean {server['cpu_percent_mean']}% max "
            f"{server['cpu_percent_max']}% ({server['cpu_seconds']} CPU s); RSS "
            f"{server['rss_mb_start']} → {server['rss_mb_end']} MB (max {server['rss_mb_max']}); "
            f"whole host {server['host_cpu_percent_mean']}% of {server['host_cores']} cores"
        )
    else:
        lines.append("  server CPU/memory: not measured (no --server-pid and no local listener)")
    lines.append(f"  load generator CPU: {report['loadgen_cpu_seconds']} s")
    verdict = "OK" if report["ok"] else "FAILED"
    lines.append(
        f"  verification: lost_edits={report['lost_edits']}, mismatched documents="
        f"{report['mismatched_documents']}, unacked at end={report['unacked_at_end']}, "
        f"teacher mirror mismatches={report['observer_mismatches']} → {verdict}"
    )
    return "\n".join(lines)
