"""The load generator: keystroke model, and a short real run that must lose nothing."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pytest

from server.loadgen.corpus import load_corpus
from server.loadgen.options import add_arguments
from server.loadgen.report import percentiles
from server.loadgen.run import check_target, main
from server.loadgen.typing import TypingModel
from tests.conftest import LiveServer

FIXTURES = Path(__file__).parent / "fixtures" / "loadgen"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def replay(model: TypingModel, essay: str) -> tuple[str, list[str], float]:
    text, kinds, total = "", [], 0.0
    for ks in model.keystrokes(essay):
        assert 0 <= ks.start <= ks.end <= len(text)
        text = text[: ks.start] + ks.insert + text[ks.end :]
        kinds.append(ks.kind)
        total += ks.delay_s
    return text, kinds, total


def test_keystrokes_rebuild_the_essay_with_human_timing() -> None:
    corpus = load_corpus(FIXTURES)
    essay = corpus["en"][0].text
    model = TypingModel(random.Random(7), revise_prob=0.0)
    text, kinds, total = replay(model, essay)
    assert text == essay
    assert kinds.count("type") >= len(essay)  # a key at a time, plus typos
    gaps = [ks.delay_s for ks in TypingModel(random.Random(7), think_prob=0).keystrokes(essay)]
    typing_gaps = sorted(gaps)[: len(gaps) // 2]
    assert 0.03 <= sum(typing_gaps) / len(typing_gaps) <= 0.3  # fast half of ~240 ms gaps
    assert replay(TypingModel(random.Random(7), revise_prob=0.0), essay) == (text, kinds, total)


def test_chinese_arrives_in_ime_bursts() -> None:
    essay = load_corpus(FIXTURES)["zh"][0].text
    model = TypingModel(random.Random(3), typo_prob=0.2, delete_sentence_prob=0.3, revise_prob=0)
    text, kinds, _ = replay(model, essay)
    assert text == essay
    assert "ime" in kinds and "backspace" in kinds
    assert kinds.count("ime") < len(essay)  # words, not characters


def test_percentiles_nearest_rank() -> None:
    p = percentiles([float(i) for i in range(1, 101)])
    assert (p["p50"], p["p95"], p["p99"], p["n"]) == (50.0, 95.0, 99.0, 100)
    assert percentiles([])["p99"] is None


def test_only_loopback_targets_by_default() -> None:
    check_target("ws://127.0.0.1:9/v1/ws", False)
    check_target("ws://localhost:9/v1/ws", False)
    with pytest.raises(SystemExit):
        check_target("ws://192.0.2.1:9/v1/ws", False)
    check_target("ws://192.0.2.1:9/v1/ws", True)
    with pytest.raises(SystemExit):
        main(parse("--students", "0"))


def test_short_run_loses_nothing(rules_server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = parse(
        "--url", rules_server.url, "--students", "5", "--teachers", "1", "--duration", "8",
        "--ramp-up", "1", "--speed", "2", "--lang", "mix", "--seed", "3", "--data", str(FIXTURES),
        "--class-size", "3", "--json", str(out), "--quiet",
    )  # fmt: skip
    assert main(args) == 0
    report = json.loads(out.read_text())
    for key in ("lost_edits", "errors", "edits_sent", "students", "duration_s"):
        assert key in report
    for key in ("edit_to_ack_ms", "edit_to_hints_ms", "server_edit_to_hints_ms"):
        assert {"p50", "p95", "p99"} <= report[key].keys()
        assert report[key]["n"] > 0
    assert report["lost_edits"] == 0 and report["mismatched_documents"] == 0
    assert report["errors"] == {}
    assert report["students"] == 5 and report["students_connected"] == 5
    assert report["edits_sent"] > 50 and report["edits_acked"] == report["edits_sent"]
    assert report["hints_received"] > 0 and report["scores_received"] > 0
    assert report["observer_messages"] > 0 and report["observer_mismatches"] == 0
    assert report["server_analysis_ms"]["p99"] < 1000
