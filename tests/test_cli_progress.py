"""What a long job says while it runs (semhash/cli/progress.py), with a fake clock: plan, lines, estimate, hint."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from support import FakeEncoder

from semhash.cli.progress import ProgressView, describe_plan, duration, progress_interval
from semhash.ingest import IndexOptions, index_paths, plan_index
from semhash.types import IndexPlan, PlannedFile


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _view(interval: float = 10.0) -> tuple[ProgressView, io.StringIO, Clock]:
    sink = io.StringIO()
    clock = Clock()
    console = Console(file=sink, force_terminal=False, width=200)
    return ProgressView(console, live=False, interval=interval, clock=clock), sink, clock


def _embed(view: ProgressView, docs: int, windows: int, chars: int, totals: tuple[int, int, int]) -> None:
    view.update("documents", docs, totals[0])
    view.update("windows", windows, totals[1])
    view.update("embed", chars, totals[2])


def test_plain_lines_come_at_most_once_per_interval_and_when_a_phase_ends() -> None:
    view, sink, clock = _view(interval=10.0)
    totals = (100, 1000, 1_000_000)
    _embed(view, 0, 0, 0, totals)  # the first event prints at once
    for step in range(1, 10):  # nine events within 9 s: no line
        clock.now += 1.0
        _embed(view, step, step * 10, step * 10_000, totals)
    clock.now += 2.0  # 11 s after the first line
    _embed(view, 10, 100, 100_000, totals)
    clock.now += 3.0
    _embed(view, 100, 1000, 1_000_000, totals)  # the end of the phase always prints
    lines = [line for line in sink.getvalue().splitlines() if line.startswith("embedding:")]
    assert len(lines) == 3, sink.getvalue()
    assert lines[0].startswith("embedding: 0/100 documents, 0/~1,000 windows")
    assert "10/100 documents" in lines[1] and "10% of the text" in lines[1]
    assert "about 1 min 39 s left" in lines[1]  # 11 s for 10% of the characters: 99 s more
    assert "docs/s" in lines[1]
    assert lines[2].startswith("embedding: 100/100 documents, 1,000/~1,000 windows") and "done in 14 s" in lines[2]


def test_each_phase_says_when_it_starts() -> None:
    view, sink, clock = _view(interval=10.0)
    _embed(view, 5, 5, 500, (5, 5, 500))
    clock.now += 1.0
    view.update("train", 1, 400)  # a new phase: said at once, whatever the interval
    clock.now += 1.0
    view.update("train", 2, 400)  # then once per interval
    view.update("train", 400, 400)
    lines = sink.getvalue().splitlines()
    assert lines[1:] == ["training (epochs): 1/400", "training (epochs): 400/400"], lines


def test_the_estimate_comes_once_after_the_first_batches_with_the_max_windows_hint() -> None:
    view, sink, clock = _view()
    big = PlannedFile("/docs/huge-changelog.txt", 900_000, 900)
    view.plan(IndexPlan(files=50, documents=50, characters=1_000_000, windows=1000, max_windows=0, largest=(big,)))
    totals = (50, 1000, 1_000_000)
    _embed(view, 0, 0, 0, totals)
    clock.now += 1.0
    _embed(view, 10, 10, 10_000, totals)  # too soon for an estimate (warm-up)
    assert "estimate" not in sink.getvalue()
    clock.now += 4.0
    _embed(view, 20, 20, 20_000, totals)
    clock.now += 4.0
    _embed(view, 30, 30, 30_000, totals)
    text = sink.getvalue()
    assert text.count("estimate: embedding takes about") == 1
    assert "4 min 5 s more" in text  # 5 s for 2% of the characters: 245 s for the other 98%
    assert "hint: 1 files hold 90% of the windows; --max-windows 64" in text


def test_no_hint_when_the_work_is_short_or_capped() -> None:
    for max_windows, seconds_per_step in ((0, 0.01), (64, 10.0)):
        view, sink, clock = _view()
        big = PlannedFile("/docs/a.txt", 900_000, 900)
        plan = IndexPlan(50, 50, 1_000_000, 1000, max_windows, (big,))
        view.plan(plan)
        _embed(view, 0, 0, 0, (50, 1000, 1_000_000))
        clock.now += max(seconds_per_step, 3.5)
        _embed(view, 20, 20, 500_000 if seconds_per_step < 1 else 20_000, (50, 1000, 1_000_000))
        assert "hint:" not in sink.getvalue()


def test_a_capped_index_reads_the_time_left_from_windows() -> None:
    """At --max-windows 64 a huge file costs 64 windows: its characters must not stretch the estimate."""
    view, sink, clock = _view(interval=0.0)
    big = PlannedFile("/docs/changelog", 900_000, 64)  # 900,000 characters, capped at 64 windows
    view.plan(IndexPlan(files=50, documents=50, characters=1_000_000, windows=200, max_windows=64, largest=(big,)))
    totals = (50, 200, 1_000_000)
    _embed(view, 0, 0, 0, totals)
    clock.now += 10.0
    _embed(view, 40, 100, 80_000, totals)  # half the windows (the short files), 8% of the characters
    last = sink.getvalue().splitlines()[-1]
    assert "about 10 s left" in last, last  # 10 s for 100 of 200 windows; characters would say 1 min 55 s
    assert "estimate: embedding takes about 10 s more" in sink.getvalue()
    uncapped, sink, clock = _view(interval=0.0)  # without a cap, the characters still rule
    uncapped.plan(IndexPlan(50, 50, 1_000_000, 200, 0, (big,)))
    _embed(uncapped, 0, 0, 0, totals)
    clock.now += 10.0
    _embed(uncapped, 40, 100, 80_000, totals)
    assert "about 1 min 55 s left" in sink.getvalue().splitlines()[-1]


def test_the_windows_total_follows_the_measured_ratio() -> None:
    view, sink, clock = _view(interval=0.0)
    _embed(view, 0, 0, 0, (10, 100, 100_000))
    clock.now += 5
    _embed(view, 5, 100, 50_000, (10, 100, 100_000))  # twice the windows per character the plan assumed
    assert "100/~200 windows" in sink.getvalue().splitlines()[-1]


def test_describe_plan_names_the_largest_files_only_when_they_are_long() -> None:
    small = IndexPlan(3, 3, 300, 3, 0, (PlannedFile("/a", 100, 1),))
    assert len(describe_plan(small)) == 1
    lines = describe_plan(IndexPlan(2, 2, 90_000, 120, 0, (PlannedFile("/big", 80_000, 100), PlannedFile("/b", 10, 1))))
    assert lines[0] == "to embed: 2 documents from 2 files, 90,000 characters, about 120 model windows"
    assert lines[1] == "largest: /big (~100 windows), /b (~1 windows): 84% of the windows"


def test_plan_index_estimates_windows_per_document_with_the_cap() -> None:
    pending = {"/x.txt": {0: 8_000}, "/y.jsonl": {1: 100, 2: 1_700}}
    plan = plan_index(pending)
    assert (plan.files, plan.documents, plan.characters, plan.windows) == (2, 3, 9_800, 10 + 1 + 3)
    assert plan.largest[0] == PlannedFile("/x.txt", 8_000, 10)
    assert plan_index(pending, max_windows=2).windows == 2 + 1 + 2


def test_index_reports_its_plan_before_embedding(tmp_path: Path, corpus: Path) -> None:
    events: list[tuple[str, object]] = []
    encoder = FakeEncoder()
    index_paths(
        tmp_path / "p.db",
        [corpus],
        IndexOptions(epochs=2, device="cpu"),
        encoder=encoder,
        progress=lambda phase, done, total: events.append((phase, (done, total))),
        on_plan=lambda plan: events.append(("plan", plan)),
    )
    assert events[0][0] == "plan"
    plan = events[0][1]
    assert isinstance(plan, IndexPlan) and plan.documents == 24 and plan.files == 24
    phases = [phase for phase, _ in events]
    assert phases.index("documents") < phases.index("embed")  # detail first: a reporter prints on "embed"
    assert ("documents", (24, 24)) in events


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.4, "0 s"), (59.6, "1 min"), (185, "3 min 5 s"), (7800, "2 h 10 min")]
)
def test_duration(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.mark.parametrize(("raw", "value"), [("", 10.0), ("2.5", 2.5), ("nan", 10.0), ("-1", 10.0), ("x", 10.0)])
def test_progress_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str, value: float) -> None:
    monkeypatch.setenv("SEMHASH_PROGRESS_SECONDS", raw)
    assert progress_interval() == value
