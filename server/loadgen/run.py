"""``inkstone loadgen``: simulated classes typing real essays against a running server.

Each worker process runs one asyncio loop with its share of the students
(and teachers). Phases: ramp-up (students connect spread over
``--ramp-up`` seconds) and typing until ``--duration`` seconds after the
start; then every student waits for its last acks, closes, and a fresh
session on each document checks that the server's stored text and version
equal the client's. Any difference counts as lost edits and fails the run
(exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import socket
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from server.auth import mint_token
from server.loadgen.corpus import load_corpus
from server.loadgen.options import (
    MAX_DURATION_S,
    MAX_STUDENTS,
    MAX_TEACHERS,
    add_arguments,
)
from server.loadgen.report import (
    ResourceSampler,
    build_report,
    format_summary,
    merge,
    samples_to_dict,
)
from server.loadgen.student import MeasuredClient, Samples, SimStudent, verify_stored
from server.loadgen.teacher import SimTeacher
from server.loadgen.typing import TypingModel

__all__ = ["add_arguments", "cli", "main", "run_loadgen"]


def check_target(url: str, allow_remote: bool) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("ws", "wss") or not parsed.hostname:
        raise SystemExit(f"--url must be ws:// or wss://, got {url!r}")
    if allow_remote:
        return
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 80)
    except OSError as exc:
        raise SystemExit(f"cannot resolve {parsed.hostname}: {exc}") from None
    if not all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos):
        raise SystemExit(
            f"{parsed.hostname} is not a loopback address; pass --allow-remote to load a "
            "server you are responsible for"
        )


def find_server_pid(url: str) -> int | None:
    """The process listening on the URL's port on this machine, if any."""
    port = urlparse(url).port or 80
    try:
        import psutil  # type: ignore[import-untyped]

        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return int(conn.pid) if conn.pid else None
    except Exception:
        return None
    return None


def _identity(cfg: dict[str, Any], i: int) -> tuple[str, str, str]:
    tag = cfg["tag"]
    return f"lg-{tag}-u{i:04d}", f"lg-{tag}-doc{i:04d}", f"lg-{tag}-c{i // cfg['class_size']:03d}"


async def _worker(
    cfg: dict[str, Any], student_ids: list[int], teacher_ids: list[int]
) -> dict[str, Any]:
    samples = Samples()
    corpus = load_corpus(Path(cfg["data"]), cfg["lang"])
    registry: dict[str, MeasuredClient] = {}
    start_wall = cfg["start_wall"]
    await asyncio.sleep(max(0.0, start_wall - time.time()))
    start = time.monotonic()
    until = start + cfg["duration"]
    ramp = cfg["ramp_up"]
    n = max(1, cfg["students"])
    students: list[SimStudent] = []
    for i in student_ids:
        user, doc, class_id = _identity(cfg, i)
        rng = random.Random(f"{cfg['seed']}:{i}")
        lang = cfg["lang"] if cfg["lang"] != "mix" else ("zh" if i % 2 == 0 else "en")
        token = mint_token(cfg["secret"], user=user, role="student", class_id=class_id)
        model = TypingModel(rng, speed=cfg["speed"])
        students.append(
            SimStudent(
                i,
                f"{cfg['url']}?class={class_id}",  # a balancer hashes on it (deploy/)
                token,
                doc,
                corpus[lang],
                model,
                rng,
                samples,
                lang=lang,
                registry=registry,
                in_flight=cfg.get("in_flight", 1),
            )
        )
    for s in students:  # until a welcome announces debounce_max_ms
        s.client.max_wait_s = cfg["debounce_max_ms"] / 1000
    samples.students = len(students)
    n_classes = max(1, (cfg["students"] + cfg["class_size"] - 1) // cfg["class_size"])
    teachers = []
    for j in teacher_ids:
        class_id = f"lg-{cfg['tag']}-c{j % n_classes:03d}"
        token = mint_token(
            cfg["secret"], user=f"lg-{cfg['tag']}-t{j:03d}", role="teacher", class_id=class_id
        )
        url = f"{cfg['url']}?class={class_id}"
        teachers.append(SimTeacher(url, token, class_id, samples, registry))

    async def start_student(s: SimStudent) -> None:
        await asyncio.sleep(ramp * s.index / n)
        await s.run(until)

    teacher_tasks = [asyncio.create_task(t.run(until + cfg["settle"])) for t in teachers]
    await asyncio.gather(*(start_student(s) for s in students))
    await asyncio.gather(*(s.finish(cfg["settle"]) for s in students))
    await asyncio.sleep(1.0)  # let the last updates reach the teachers
    final = {s.doc: (s.client.state.version or 0, s.client.state.text) for s in students}
    for t in teachers:
        samples.observer_mismatches += t.check(final)
        await t.close()
    for task in teacher_tasks:
        task.cancel()
    semaphore = asyncio.Semaphore(50)

    async def verify(s: SimStudent) -> dict[str, Any] | None:
        async with semaphore:
            return await verify_stored(s)

    for problem in await asyncio.gather(*(verify(s) for s in students)):
        if problem is not None:
            samples.mismatches.append(problem)
            if "client_version" in problem:
                lost = abs(problem["client_version"] - problem["server_version"])
                samples.lost_edits += max(1, lost, problem["unacked"])
            else:
                samples.lost_edits += 1
    result = samples_to_dict(samples)
    result["cpu_s"] = time.process_time()
    welcomed = [s.client.welcome for s in students if s.client.welcome is not None]
    result["models"] = welcomed[0].models if welcomed else None
    return result


def _worker_entry(
    cfg: dict[str, Any], student_ids: list[int], teacher_ids: list[int]
) -> dict[str, Any]:
    return asyncio.run(_worker(cfg, student_ids, teacher_ids))


def run_loadgen(args: argparse.Namespace) -> dict[str, Any]:
    """Run the load and return the report (also used by tests and bench scripts)."""
    if not 1 <= args.students <= MAX_STUDENTS:
        raise SystemExit(f"--students must be 1..{MAX_STUDENTS}")
    if not 0 <= args.teachers <= MAX_TEACHERS:
        raise SystemExit(f"--teachers must be 0..{MAX_TEACHERS}")
    if not 0 < args.duration <= MAX_DURATION_S:
        raise SystemExit(f"--duration must be in (0, {MAX_DURATION_S}] seconds")
    if args.speed <= 0:
        raise SystemExit("--speed must be positive")
    check_target(args.url, args.allow_remote)
    procs = max(1, min(args.procs, args.students, os.cpu_count() or 1, 16))
    ramp = args.ramp_up if args.ramp_up is not None else min(10.0, args.duration / 4)
    tag = args.tag or f"{args.seed}-{int(time.time() * 1000) % 10**8}"
    cfg: dict[str, Any] = {
        "url": args.url,
        "students": args.students,
        "teachers": args.teachers,
        "duration": float(args.duration),
        "ramp_up": float(min(ramp, args.duration)),
        "speed": args.speed,
        "lang": args.lang,
        "seed": args.seed,
        "data": str(args.data),
        "class_size": max(1, args.class_size),
        "secret": args.secret or os.environ.get("INKSTONE_SECRET") or None,
        "tag": tag,
        "settle": args.settle,
        "debounce_max_ms": args.debounce_max_ms,
        "in_flight": args.in_flight,
        "start_wall": time.time() + (2.0 if procs > 1 else 0.0),
    }
    load_corpus(args.data, args.lang)  # fail early on a missing data folder
    pid = args.server_pid if args.server_pid is not None else find_server_pid(args.url)
    sampler = ResourceSampler(pid)
    sampler.start()
    begun = time.monotonic()
    shares = [list(range(args.students))[k::procs] for k in range(procs)]
    teacher_shares = [list(range(args.teachers))[k::procs] for k in range(procs)]
    if procs == 1:
        parts = [_worker_entry(cfg, shares[0], teacher_shares[0])]
    else:
        with ProcessPoolExecutor(procs, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(_worker_entry, cfg, s, t)
                for s, t in zip(shares, teacher_shares, strict=True)
            ]
            parts = [f.result() for f in futures]
    elapsed = time.monotonic() - begun
    server = sampler.stop()
    loadgen_cpu = sum(p.pop("cpu_s") for p in parts)
    models = [m for m in (p.pop("models") for p in parts) if m is not None]
    samples = merge(parts)
    keys = ("url", "students", "teachers", "lang", "speed", "seed", "tag", "in_flight")
    public = {k: cfg[k] for k in keys}
    public.update(
        ramp_up_s=cfg["ramp_up"],
        procs=procs,
        class_size=cfg["class_size"],
        typing_s=cfg["duration"],
        wall_s=round(elapsed, 2),
    )
    public["server_models"] = models[0] if models else None
    return build_report(
        samples, config=public, duration_s=cfg["duration"], server=server, loadgen_cpu_s=loadgen_cpu
    )


def main(args: argparse.Namespace) -> int:
    report = run_loadgen(args)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    if not args.quiet:
        print(format_summary(report), flush=True)
    return 0 if report["ok"] else 1


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inkstone loadgen", description=__doc__)
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
