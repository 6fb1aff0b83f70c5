"""``semhash index --engine ray``: the same index as the local path, resumable after a dead worker.

The Ray tests need the ``ray`` extra (``pip install -e ".[dev,ray]"``, what ``make test`` installs) and
are skipped without it; the tests of the options and of the missing-Ray message run everywhere. One Ray
session (2 CPUs) serves the whole module; the engine joins it and leaves it running.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from semhash.adapted import adapted_name, load_adapted_encoder
from semhash.cli import app
from semhash.config import ENV_RAY_KILL_AFTER, ENV_RAY_MAX_RESTARTS
from semhash.corpus import ReadOptions
from semhash.engine import check_engine
from semhash.engine.ray_engine import EmbedActor, _windows_of, plan_units, read_batches
from semhash.errors import CorruptModelError, EngineError, UsageError
from semhash.ingest import IndexOptions, index_paths
from semhash.store import Store, StoredWindows

SAMPLE = Path(__file__).parent.parent / "data" / "sample"
EPOCHS = 20  # enough for a deterministic model; the comparison needs the same recipe, not a good one
FOLDERS = ("astronomy", "cooking", "cycling")  # ~65 documents: small, yet several batches per worker
LONG_CHARS = 6000  # one document longer than the Ray run's batch_chars: embedded on the local long path


# -- without Ray: options and the missing-package message --------------------------------------------------
def test_without_ray_the_engine_says_how_to_install_it(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    db = tmp_path / "x.db"
    result = CliRunner().invoke(app, ["index", str(corpus), "--db", str(db), "--engine", "ray"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert 'pip install -e ".[ray]"' in lines[0]
    assert not db.exists()  # refused before any work


@pytest.mark.parametrize(
    "args",
    [
        ["--engine", "spark"],
        ["--workers", "2"],
        ["--address", "ray://head:10001"],
        ["--engine", "ray", "--workers", "0"],
    ],
)
def test_engine_options_are_checked_before_any_work(corpus: Path, tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "x.db"
    result = CliRunner().invoke(app, ["index", str(corpus), "--db", str(db), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not db.exists()


def test_check_engine() -> None:
    assert check_engine("Ray", workers=2) == "ray"
    assert check_engine("local") == "local"
    with pytest.raises(UsageError, match="--engine ray"):
        IndexOptions(workers=3)


def test_plan_units_keeps_files_whole_and_every_document_once() -> None:
    pending = {"/a.jsonl": {0: 10, 1: 10, 2: 10, 3: 50}, "/b.txt": {0: 5}, "/c.txt": {0: 20}, "/d.txt": {0: 5}}
    units = plan_units(pending, batch_docs=2, batch_chars=40)
    assert units == [{"/a.jsonl": [0, 1, 2, 3]}, {"/b.txt": [0], "/c.txt": [0]}, {"/d.txt": [0]}]


def test_read_batches_reads_a_file_once_into_bounded_batches(tmp_path: Path) -> None:
    records = tmp_path / "posts.jsonl"
    texts = [f"post {i} " + "word " * (i % 4) for i in range(10)]
    records.write_text("\n".join(json.dumps({"text": t}) for t in texts))
    single = tmp_path / "note.txt"
    single.write_text("a note")
    wanted = {str(records): list(range(1, 11)), str(single): [0]}  # records count from 1
    unit = np.array([json.dumps(wanted)], dtype=object)
    out = [json.loads(b["docs"][0]) for b in read_batches({"unit": unit}, ReadOptions(), batch_docs=3, batch_chars=25)]
    docs = [doc for batch in out for doc in batch]
    assert sorted((d[0], d[1]) for d in docs) == sorted((p, r) for p, rs in wanted.items() for r in rs)
    assert sorted(d[2] for d in docs) == sorted([t.strip() for t in texts] + ["a note"])
    for batch in out:
        assert len(batch) <= 3 and (len(batch) == 1 or sum(len(d[2]) for d in batch) <= 25)


def test_a_worker_loads_only_the_adapted_weights_the_index_records() -> None:
    """The driver ships an adapted index's weights; the worker checks them against the name before any load."""
    name = adapted_name("sentence-transformers/all-MiniLM-L6-v2", b"the weights the index records")
    for shipped in (b"other weights", None):
        with pytest.raises(CorruptModelError, match="checksum"):
            EmbedActor(name, "cpu", 0, 1, None, adapted=shipped)


# -- with Ray and the real model ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three folders of data/sample, one long document (several model windows) and a JSONL file."""
    root = tmp_path_factory.mktemp("ray") / "sample"
    for folder in FOLDERS:
        shutil.copytree(SAMPLE / folder, root / folder)
    sentence = "The probe's spectrometer measured methane in the atmosphere of the distant moon. "
    (root / "astronomy" / "long-survey.txt").write_text(sentence * (LONG_CHARS // len(sentence) + 1))
    # A file of many records: read once by one Ray task, cut into several embedding batches.
    rides = [f"Ride report {i}: {i * 7} km along the river, one puncture, strong headwind." for i in range(20)]
    (root / "cycling" / "rides.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in rides))
    return root


@pytest.fixture(scope="module")
def local_db(sample: Path) -> Path:
    db = sample.parent / "local.db"
    index_paths(db, [sample], IndexOptions(device="cpu", epochs=EPOCHS))
    return db


def _by_location(db: Path) -> dict[tuple[str, int], tuple[np.ndarray, int]]:
    with Store.open(db) as store:
        states = store.document_states()
        ids, embeddings = store.embeddings([state[0] for state in states.values()])
        code_ids, codes = store.codes()
    row = {int(i): n for n, i in enumerate(ids)}
    code = dict(zip(code_ids.tolist(), codes.tolist(), strict=True))
    return {key: (embeddings[row[state[0]]], code[state[0]]) for key, state in states.items()}


def _assert_same_index(db: Path, reference: Path) -> None:
    got, want = _by_location(db), _by_location(reference)
    assert got.keys() == want.keys()
    cosines = np.array([float(got[k][0] @ want[k][0]) for k in want])
    assert cosines.min() >= 0.9999, cosines.min()
    same_codes = np.mean([got[k][1] == want[k][1] for k in want])
    assert same_codes >= 0.995, same_codes
    # The window vectors (the passages' source) are stored for Ray's documents too, the same as the local ones.
    got_windows, want_windows = _windows_by_location(db), _windows_by_location(reference)
    assert got_windows.keys() == want_windows.keys()
    assert sum(len(w.starts) for w in want_windows.values()) > len(want_windows)  # several documents have windows
    for key, want_window in want_windows.items():
        mine = got_windows[key]
        assert np.array_equal(mine.starts, want_window.starts) and np.array_equal(mine.ends, want_window.ends), key
        agree = (mine.vectors.astype(np.float32) * want_window.vectors.astype(np.float32)).sum(axis=1)
        assert agree.min() >= 0.999, (key, agree.min())


def _windows_by_location(db: Path) -> dict[tuple[str, int], StoredWindows]:
    with Store.open(db) as store:
        states = store.document_states()
        stored = store.windows([state[0] for state in states.values()])
    return {key: stored[state[0]] for key, state in states.items() if state[0] in stored}


@pytest.mark.slow
def test_ray_index_equals_the_local_one(ray_session: None, sample: Path, local_db: Path) -> None:
    db = sample.parent / "ray.db"
    options = IndexOptions(device="cpu", epochs=EPOCHS, engine="ray", workers=2, batch_chars=LONG_CHARS - 1000)
    phases: list[tuple[str, int, int]] = []
    report = index_paths(db, [sample], options, progress=lambda *p: phases.append(p))
    assert report.added == len(_by_location(local_db)) and report.trained
    assert report.windows > report.added  # the long document went through the local window path
    embed = [p for p in phases if p[0] == "embed"]
    assert embed[-1][1] == embed[-1][2] > 0 and all(b[1] >= a[1] for a, b in itertools.pairwise(embed))
    _assert_same_index(db, local_db)


@pytest.mark.slow
def test_a_killed_worker_keeps_committed_batches_and_a_rerun_completes(
    ray_session: None, sample: Path, local_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sample.parent / "killed.db"
    args = ["index", str(sample), "--db", str(db), "--device", "cpu", "--epochs", str(EPOCHS)]
    ray_args = ["--engine", "ray", "--workers", "2", "--batch", "8"]
    monkeypatch.setenv(ENV_RAY_KILL_AFTER, "2")  # the actors die at their next batch once 2 batches are committed
    monkeypatch.setenv(ENV_RAY_MAX_RESTARTS, "0")
    failed = CliRunner().invoke(app, [*args, *ray_args])
    assert failed.exit_code == 1, failed.output
    assert "Traceback" not in failed.output
    # Ray's raylet may print its own notice of the death (asynchronously); semhash's answer is one line.
    errors = [line for line in failed.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: a Ray worker died"), failed.output
    assert "rerun the same command to resume" in errors[0]
    total = len(_by_location(local_db))
    with Store.open(db) as store:
        committed = store.count()
        assert store.bits is None  # stopped before training
    assert 0 < committed < total

    monkeypatch.delenv(ENV_RAY_KILL_AFTER)
    resumed = CliRunner().invoke(app, [*args, *ray_args, "--json"])
    assert resumed.exit_code == 0, resumed.output
    report = json.loads(resumed.output.strip().splitlines()[-1])
    assert report["added"] == total - committed  # only what was missing was embedded
    _assert_same_index(db, local_db)


# -- an adapted index (`semhash train --adapt`) on Ray ------------------------------------------------------
def _copy_db(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


@pytest.fixture(scope="module")
def adapted_db(sample: Path, local_db: Path) -> tuple[Path, str, bytes]:
    """A copy of the local index switched to an adapted encoder (a few steps on a few documents)."""
    from semhash.adapt import AdaptConfig, adapt_store
    from semhash.train import TrainConfig

    db = sample.parent / "adapted.db"
    _copy_db(local_db, db)
    with Store.open(db, write=True) as store:
        adapt_store(store, 32, "cpu", TrainConfig(), AdaptConfig(max_docs=8, batch_size=4, lr=1e-3))
        name = store.embedding_model
        assert name is not None
        blob = store.adapted_encoder(name)
        assert blob is not None
        _, adapted = store.embeddings()
    with Store.open(local_db) as store:
        _, frozen = store.embeddings()
    # Another encoder than the frozen one: workers that loaded the frozen model would fail the tests below.
    assert (adapted * frozen).sum(axis=1).min() < 0.99
    return db, name, blob


def _extra_corpus(root: Path) -> dict[Path, str]:
    """A short document, one of several 128-token windows, one longer than the run's batch_chars."""
    sentence = "The cyclist patched the inner tube by the road and pumped the tyre back up. "
    texts = {
        root / "short.txt": "Which spoke key fits a road bike wheel?",
        root / "windows.txt": sentence * 30,  # ~450 tokens: the adapted encoder embeds its first window only
        root / "long.txt": sentence * (LONG_CHARS // len(sentence) + 1),  # embedded on the local long path
    }
    root.mkdir(parents=True, exist_ok=True)
    for path, text in texts.items():
        path.write_text(text)
    return texts


@pytest.mark.slow
def test_ray_indexes_an_adapted_index_with_its_adapted_encoder(
    ray_session: None, adapted_db: tuple[Path, str, bytes], tmp_path: Path
) -> None:
    db, name, blob = adapted_db
    texts = _extra_corpus(tmp_path / "extra")
    options = IndexOptions(device="cpu", engine="ray", workers=2, batch_chars=LONG_CHARS - 1000)
    report = index_paths(db, [tmp_path / "extra"], options)
    assert report.added == len(texts)
    encoder = load_adapted_encoder(name, blob, "cpu")
    with Store.open(db) as store:
        assert store.embedding_model == name
        ids = [store.find(str(path.resolve()))[0].id for path in texts]
        _, embeddings = store.embeddings(ids)
        assert not store.ids_without_code()
    cosine = (embeddings * encoder.encode(list(texts.values()))).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine


@pytest.mark.slow
def test_ray_refuses_adapted_weights_that_are_not_the_recorded_ones(
    ray_session: None, adapted_db: tuple[Path, str, bytes], tmp_path: Path
) -> None:
    db = tmp_path / "damaged.db"
    _copy_db(adapted_db[0], db)
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE encoders SET weights = ?", [b"\x00" * 64])
    connection.close()
    _extra_corpus(tmp_path / "extra")
    args = ["index", str(tmp_path / "extra"), "--db", str(db), "--device", "cpu", "--engine", "ray"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "adapted encoder stored in the index is unreadable" in result.output
    assert "Traceback" not in result.output


def test_window_columns_from_a_worker_are_checked_before_they_are_stored() -> None:
    """What a worker sends back is decoded by size: spans and vectors that do not fit are one engine error."""
    spans = np.array([[0, 5], [5, 9]], dtype="<i8")
    vectors = np.ones((2, 4), dtype="<f2")
    batch = {
        "has_windows": np.array([True]),
        "window_spans": np.array([spans.tobytes()], dtype=object),
        "window_vectors": np.array([vectors.tobytes()], dtype=object),
    }
    (got,) = _windows_of(batch, 1, 4) or []
    assert np.array_equal(got[0], spans) and np.array_equal(got[1], vectors)
    assert _windows_of({**batch, "has_windows": np.array([False])}, 1, 4) is None  # an encoder without windows
    short = {**batch, "window_vectors": np.array([vectors[:1].tobytes()], dtype=object)}
    with pytest.raises(EngineError, match="do not fit"):
        _windows_of(short, 1, 4)
