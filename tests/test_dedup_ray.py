"""``semhash dedup --engine ray``: the same pairs and clusters as the local path, and a killed worker survives.

The Ray tests need the ``ray`` extra and are skipped without it; they share one local Ray session (2 CPUs,
started in this process), and are marked slow (starting Ray takes 10-20 s on the shared 2-core machine). The
tests of the options and of the missing-Ray message run everywhere.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import cast

import numpy as np
import pytest
from support import invoke_dedup
from test_dedup_cells import planted

import semhash.dedup.options as dedup_options
from semhash.codes import to_sql_int
from semhash.config import ENV_RAY_KILL_AFTER, ENV_RAY_MAX_RESTARTS
from semhash.dedup import DedupEngine, DedupOptions, DedupResult, cells, dedup_index
from semhash.dedup.allpairs import all_pairs
from semhash.dedup.cells import CellPairs, cell_pairs
from semhash.dedup.distributed import runners
from semhash.engine.ray_tasks import RayTasks
from semhash.errors import EngineError, UsageError
from semhash.store import Store
from semhash.types import SourceDocument

DOCS = 6000  # ~0.3 s of cell products: the test's time is Ray's start and its task round trips


# -- without Ray: options and the missing-package message --------------------------------------------------
def test_without_ray_dedup_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code, output = invoke_dedup("--db", tmp_path / "x.db", "--engine", "ray")
    lines = output.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error:"), output
    assert 'pip install -e ".[ray]"' in lines[0]  # said first: before the missing index


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "spark"], "unknown --engine"),
        (["--workers", "2"], "go with --engine ray"),
        (["--engine", "ray", "--workers", "0"], "--workers"),
        (["--engine", "ray", "--neighbours", "5"], "runs only locally"),
        (["--engine", "ray", "--against", "new.txt"], "not with --against"),
    ],
)
def test_engine_options_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    code, output = invoke_dedup("--db", tmp_path / "x.db", *args)
    assert code == 2 and message in output, output
    assert "Traceback" not in output


def test_dedup_engine_checks_its_options() -> None:
    assert DedupEngine("Ray", workers=2).engine == "ray"
    with pytest.raises(UsageError, match="--neighbours K"):
        DedupEngine("ray").check(DedupOptions(neighbours=0))
    DedupEngine().check(DedupOptions(neighbours=0))  # local runs every stage


class _FakeRay:
    """Ray's task calls in this process; two threads' ``put`` calls meet, as two maps' submissions can interleave."""

    def __init__(self) -> None:
        self.kills: list[str] = []
        self.meet = threading.Barrier(2, timeout=10)

    def remote(self, **_: object) -> Callable[[Callable[..., object]], SimpleNamespace]:
        return lambda _fn: SimpleNamespace(remote=self._call)

    def put(self, value: object) -> object:
        self.meet.wait()  # both threads are between taking a task's number and submitting it
        return value

    def wait(self, refs: list[object], num_returns: int) -> tuple[list[object], list[object]]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: object) -> object:
        return ref

    def cancel(self, ref: object, force: bool) -> None:
        pass

    def _call(self, fn: Callable[[int, None], int], payload: int, shared: None, kill: str | None) -> object:
        if kill is not None:
            self.kills.append(kill)
        return object()  # a distinct ObjectRef stand-in; its value is not what this test looks at


def test_two_threads_mapping_at_once_number_every_task_once() -> None:
    """The cells stage maps in two threads at once: every task number is taken once, so the kill hook's is reached."""
    missed = []
    for kill_task in range(40):  # whichever number an unsafe count skips, one of these runs is looking for it
        fake = _FakeRay()
        tasks = RayTasks(cast(ModuleType, fake), window=4, retries=0, kill_task=kill_task)

        def drain(tasks: RayTasks = tasks) -> None:
            for _ in tasks.map(lambda payload, _: payload, range(20), None):
                pass

        threads = [threading.Thread(target=drain) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert tasks.counts.submitted == tasks.counts.tasks == 40
        if fake.kills != [tasks.kill_marker]:
            missed.append(kill_task)
    assert missed == []


# -- on a local Ray session --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    """Topical unit vectors with 5% near copies (cosine 0.82-0.99): plenty of pairs at floor 0.5 as well."""
    return planted(n=DOCS, seed=11)[0]


def _assert_same_cells(got: CellPairs, want: CellPairs) -> None:
    assert len(want.i) >= 300  # a test of many pairs, not of none
    assert np.array_equal(got.i, want.i) and np.array_equal(got.j, want.j)
    assert np.array_equal(got.cosine, want.cosine)  # bit for bit
    assert (got.products, got.dropped, got.cells, got.largest_cell) == (
        want.products,
        want.dropped,
        want.cells,
        want.largest_cell,
    )


@pytest.mark.slow
def test_cells_and_all_pairs_on_ray_are_the_local_ones(
    ray_session: None, vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cells, "ASSIGN_BLOCK", 1024)  # several assignment blocks, here and on Ray
    local = cell_pairs(vectors, 0.5)
    budgeted = cell_pairs(vectors, 0.8, budget=len(vectors) // 20)  # order-dependent: the same pairs kept
    exact = all_pairs(vectors, 0.5, block_bytes=1 << 21)  # many bands
    with runners(DedupEngine("ray")) as run:
        assert run is not None
        _assert_same_cells(cell_pairs(vectors, 0.5, runner=run.cells, assign=run.assign), local)
        again = cell_pairs(vectors, 0.8, budget=len(vectors) // 20, runner=run.cells, assign=run.assign)
        assert budgeted.dropped > 0
        _assert_same_cells(again, budgeted)
        on_ray = all_pairs(vectors, 0.5, block_bytes=1 << 21, runner=run.bands)
        assert run.tasks.counts.tasks > 10  # the work was cut into many tasks
    for got, want in zip(on_ray, exact, strict=True):
        assert np.array_equal(got, want)


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_the_pairs_are_the_same(
    ray_session: None, vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = cell_pairs(vectors, 0.5)
    monkeypatch.setenv(ENV_RAY_KILL_AFTER, "3")  # the fourth task kills its worker process on its first try
    with runners(DedupEngine("ray")) as run:
        assert run is not None
        got = cell_pairs(vectors, 0.5, runner=run.cells, assign=run.assign)
        assert Path(run.tasks.kill_marker).exists()  # the task did reach the kill (it leaves the marker first)
    _assert_same_cells(got, local)


@pytest.mark.slow
def test_a_worker_dead_beyond_its_retries_is_one_engine_error(
    ray_session: None, vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_RAY_KILL_AFTER, "0")
    monkeypatch.setenv(ENV_RAY_MAX_RESTARTS, "0")  # no retry: the first task's death ends the run
    with runners(DedupEngine("ray")) as run, pytest.raises(EngineError) as caught:
        assert run is not None
        cell_pairs(vectors, 0.5, runner=run.cells)
    message = str(caught.value)
    assert "worker died" in message and ENV_RAY_MAX_RESTARTS in message and "\n" not in message


def _vector_store(path: Path, x: np.ndarray) -> None:
    """A store of ``x``'s rows as documents: short distinct texts, every 500th document an exact twin of the next."""
    rng = np.random.default_rng(0)
    texts = [f"document {k} of the planted set" for k in range(len(x))]
    for k in range(0, len(x) - 1, 500):
        texts[k + 1] = texts[k]
    docs = [
        SourceDocument(f"/planted/doc{k}.txt", 0, t, hashlib.sha256(t.encode()).hexdigest(), float(k))
        for k, t in enumerate(texts)
    ]
    with Store.open(path, create=True) as store:
        store.check_embedding_model("fake", x.shape[1])
        ids = store.upsert_documents(docs, x)
        store.save_model(b"", bits=32, input_dim=x.shape[1], config={}, stats={}, trained_on=len(x))
        codes = rng.integers(0, 2**32, len(x))
        store.set_codes(ids, [to_sql_int(int(c), 32) for c in codes], [0.0] * len(x))


def _same_result(got: DedupResult, want: DedupResult) -> None:
    assert np.array_equal(got.left, want.left) and np.array_equal(got.right, want.right)
    assert np.array_equal(got.cosine, want.cosine) and np.array_equal(got.hamming, want.hamming)
    assert got.clusters == want.clusters  # dataclasses: every member, score and reason
    assert len(want.clusters) > 50 and want.stats.exact_duplicates > 0


@pytest.mark.slow
def test_dedup_on_ray_finds_the_local_pairs_and_clusters(
    ray_session: None, vectors: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "planted.db"
    _vector_store(db, vectors)
    # The exact stage (every pair, the default up to 20,000 documents), through the CLI.
    code, local_out = invoke_dedup("--db", db, "--json")
    assert code == 0, local_out
    code, ray_out = invoke_dedup("--db", db, "--json", "--engine", "ray")
    assert code == 0, ray_out
    assert ray_out == local_out and len(local_out.splitlines()) > 100
    assert json.loads(local_out.splitlines()[0])["cluster"] == 1
    code, summary = invoke_dedup("--db", db, "--engine", "ray", "--workers", "2")
    assert code == 0 and "; cosines on ray (" in summary, summary
    # The cells stage (the default above 20,000 documents, here from 1,000), through the Python service.
    monkeypatch.setattr(dedup_options, "EXACT_LIMIT", 1000)
    local = dedup_index(db, DedupOptions(cluster="components"))
    on_ray = dedup_index(db, DedupOptions(cluster="components"), DedupEngine("ray"))
    assert local.stats.stage == on_ray.stats.stage == "cells"
    assert local.stats.engine == "local" and on_ray.stats.engine.startswith("ray (")
    _same_result(on_ray, local)
