"""How many rig sessions a part of the bench gets when L1 dies mid-way (bench.__main__)."""

import argparse

import bench.__main__ as bench_main
import pytest
from bench.stats import Table


def _scripted(monkeypatch: pytest.MonkeyPatch, rounds_per_session: list[int]) -> list[int]:
    """Each session finishes the next number of rounds; returns the rounds asked of each."""
    asked: list[int] = []

    def session(args: argparse.Namespace, runs: int, first: int,
                part: str) -> dict[str, object]:
        got = min(rounds_per_session[len(asked)], runs)
        asked.append(runs)
        return {"rounds": got, "done": got == runs, "rig_status": 0 if got == runs else 1}

    monkeypatch.setattr(bench_main, "rig_session", session)
    return asked


def test_sessions_that_make_progress_go_on_until_every_round_is_done(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _scripted(monkeypatch, [3, 0, 1, 1])
    result = bench_main.rig_rounds(argparse.Namespace(), 5, Table(), "single")
    assert asked == [5, 2, 2, 1]  # each new session asks for the rounds still missing
    assert result["rounds"] == 5 and result["rig_sessions"] == 4
    assert len(result["retries"]) == 3  # each early end is listed


def test_two_barren_sessions_in_a_row_end_the_part(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _scripted(monkeypatch, [2, 0, 0, 5])
    result = bench_main.rig_rounds(argparse.Namespace(), 5, Table(), "single")
    assert asked == [5, 3, 3]
    assert result["rounds"] == 2


def test_the_number_of_sessions_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never two barren sessions in a row, but too few rounds: rounds wanted + 2 sessions.
    asked = _scripted(monkeypatch, [1, 0] * 10)
    result = bench_main.rig_rounds(argparse.Namespace(), 5, Table(), "single")
    assert len(asked) == 7 and result["rounds"] == 4
    asked = _scripted(monkeypatch, [0, 1])
    result = bench_main.rig_rounds(argparse.Namespace(), 1, Table(), "creation")
    assert len(asked) == 2 and result["rounds"] == 1 and result["done"]
