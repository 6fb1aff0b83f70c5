"""``index_paths``: incremental indexing, training, interruption and resume."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from support import FAST_EPOCHS, FakeEncoder

from semhash.caches.hamming import CodeIndex, faiss_path_for
from semhash.caches.sync import stamp_of
from semhash.errors import CorpusError, ModelMismatchError, UsageError
from semhash.ingest import IndexOptions, index_paths, retrain_index
from semhash.store import Store

OPTS = IndexOptions(epochs=FAST_EPOCHS, device="cpu", batch_docs=4)


def test_first_index_embeds_trains_encodes_and_builds_faiss(tmp_path: Path, corpus: Path) -> None:
    db = tmp_path / "s.db"
    report = index_paths(db, [corpus], OPTS, encoder=FakeEncoder())
    assert (report.added, report.updated, report.removed, report.unchanged) == (24, 0, 0, 0)
    assert report.trained and report.encoded == 24 and report.total_documents == 24
    with Store.open(db) as store:
        assert store.count(encoded_only=True) == 24
        assert store.bits == 32 and store.embedding_model == "fake-bow"
        index = CodeIndex.load(faiss_path_for(db), stamp_of(store), 32)
        assert index is not None and index.size == 24
        _, codes = store.codes()
        assert len(set(codes.tolist())) > 1  # not collapsed to one code


def test_rerun_skips_unchanged_updates_changed_adds_new_removes_gone(tmp_path: Path, corpus: Path) -> None:
    db = tmp_path / "s.db"
    index_paths(db, [corpus], OPTS, encoder=FakeEncoder())
    (corpus / "space" / "space-0.txt").write_text("an entirely new text about rockets")
    (corpus / "food" / "food-1.txt").unlink()
    (corpus / "bikes" / "new.md").write_text("a new note on brakes and tyres")
    encoder = FakeEncoder()
    report = index_paths(db, [corpus], OPTS, encoder=encoder)
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 1, 1, 22)
    assert sorted(encoder.encoded) == ["a new note on brakes and tyres", "an entirely new text about rockets"]
    assert not report.trained and report.encoded == 2
    with Store.open(db) as store:
        assert store.count() == 24 and store.count(encoded_only=True) == 24
    again = index_paths(db, [corpus], OPTS, encoder=FakeEncoder())
    assert again.embedded == 0 and again.unchanged == 24


def test_removal_is_scoped_to_the_indexed_roots(tmp_path: Path, corpus: Path) -> None:
    db = tmp_path / "s.db"
    index_paths(db, [corpus], OPTS, encoder=FakeEncoder())
    report = index_paths(db, [corpus / "space"], OPTS, encoder=FakeEncoder())
    assert report.removed == 0 and report.unchanged == 8
    assert report.total_documents == 24


def test_interrupted_run_keeps_committed_batches_and_resumes(tmp_path: Path, corpus: Path) -> None:
    db = tmp_path / "s.db"
    with pytest.raises(KeyboardInterrupt):
        index_paths(db, [corpus], OPTS, encoder=FakeEncoder(fail_after=3))
    with Store.open(db) as store:
        assert store.count() == 12  # three batches of four were committed
    resumed = FakeEncoder()
    report = index_paths(db, [corpus], OPTS, encoder=resumed)
    assert report.unchanged == 12 and report.added == 12
    assert len(resumed.encoded) == 12  # only what was not committed is embedded again
    assert report.trained and report.total_documents == 24
    with Store.open(db) as store:
        assert store.count(encoded_only=True) == 24


def test_interruption_after_embedding_before_training_resumes_with_training(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("semhash.train.train_hasher", interrupted)
    with pytest.raises(KeyboardInterrupt):
        index_paths(db, [corpus], OPTS, encoder=FakeEncoder())
    monkeypatch.undo()
    encoder = FakeEncoder()
    report = index_paths(db, [corpus], OPTS, encoder=encoder)
    assert encoder.encoded == [] and report.trained and report.encoded == 24


def test_retrain_changes_bits_without_reembedding(tmp_path: Path, corpus: Path) -> None:
    db = tmp_path / "s.db"
    index_paths(db, [corpus], OPTS, encoder=FakeEncoder())
    with pytest.raises(UsageError, match="--retrain"):
        index_paths(db, [corpus], IndexOptions(bits=16, epochs=FAST_EPOCHS), encoder=FakeEncoder())
    encoder = FakeEncoder()
    report = index_paths(db, [corpus], IndexOptions(bits=16, retrain=True, epochs=FAST_EPOCHS), encoder=encoder)
    assert encoder.encoded == [] and report.trained and report.encoded == 24
    with Store.open(db) as store:
        assert store.bits == 16
        _, codes = store.codes()
        assert int(np.max(codes)) < 1 << 16
    report = retrain_index(db, bits=24, epochs=FAST_EPOCHS, device="cpu")
    assert report.encoded == 24
    with Store.open(db) as store:
        assert store.bits == 24


def test_other_embedding_model_is_refused_before_any_work(tmp_path: Path, corpus: Path) -> None:
    db = tmp_path / "s.db"
    index_paths(db, [corpus], OPTS, encoder=FakeEncoder())

    class Other(FakeEncoder):
        name = "other-model"

    other = Other()
    with pytest.raises(ModelMismatchError, match="fake-bow"):
        index_paths(db, [corpus], OPTS, encoder=other)
    assert other.encoded == []


def test_empty_corpus_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("  ")
    db = tmp_path / "s.db"
    with pytest.raises(CorpusError, match="no documents found"):
        index_paths(db, [empty], OPTS, encoder=FakeEncoder())
    assert not db.exists()


def test_bad_bits_fail_before_work(tmp_path: Path, corpus: Path) -> None:
    with pytest.raises(UsageError, match="multiple of 8"):
        index_paths(tmp_path / "s.db", [corpus], IndexOptions(bits=12), encoder=FakeEncoder())


def test_tiny_corpus_trains_without_nan(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    root.mkdir()
    (root / "one.txt").write_text("a single lonely document")
    report = index_paths(tmp_path / "s.db", [root], OPTS, encoder=FakeEncoder())
    assert report.total_documents == 1 and report.encoded == 1
    assert np.isfinite(report.train_stats.get("min_bit_usage", 0.0))


def test_unchanged_rerun_keeps_the_faiss_file_and_repairs_a_corrupt_one(tmp_path: Path, corpus: Path) -> None:
    db = tmp_path / "s.db"
    index_paths(db, [corpus], OPTS, encoder=FakeEncoder())
    faiss_file = faiss_path_for(db)
    written = faiss_file.stat().st_mtime_ns
    index_paths(db, [corpus], OPTS, encoder=FakeEncoder())
    assert faiss_file.stat().st_mtime_ns == written  # nothing changed: not rebuilt
    faiss_file.write_bytes(b"garbage")
    index_paths(db, [corpus], OPTS, encoder=FakeEncoder())
    with Store.open(db) as store:
        repaired = CodeIndex.load(faiss_file, stamp_of(store), 32)
    assert repaired is not None and repaired.size == 24


def test_an_index_with_an_embedding_only_model_still_grows_and_answers(tmp_path: Path, corpus: Path) -> None:
    """Indexes built before the lexical features keep working with their stored model."""
    from dataclasses import asdict

    from semhash.model import model_to_bytes
    from semhash.search import QueryOptions, Searcher
    from semhash.train import TrainConfig, train_hasher

    db = tmp_path / "s.db"
    encoder = FakeEncoder()
    index_paths(db, [corpus], OPTS, encoder=encoder)
    with Store.open(db) as store:
        _, embeddings = store.embeddings()
        config = TrainConfig(epochs=FAST_EPOCHS, lexical_weight=0.0)
        old_model, _ = train_hasher(embeddings, 32, config)  # no texts: embedding-only, as before
        assert old_model.lexical is None
        store.save_model(model_to_bytes(old_model), 32, embeddings.shape[1], asdict(config), {}, len(embeddings))
        store.clear_codes()
    (corpus / "bikes" / "new.txt").write_text("bicycle chain gear pedal brake")
    report = index_paths(db, [corpus], OPTS, encoder=encoder)
    assert not report.trained and report.encoded == 25
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.query("bicycle chain gear pedal brake", QueryOptions(k=1))
    assert hits[0].path.endswith("new.txt") and hits[0].cosine == pytest.approx(1.0, abs=1e-5)


def test_negative_lexical_weight_fails_before_any_embedding(tmp_path: Path, corpus: Path) -> None:
    encoder = FakeEncoder()
    with pytest.raises(UsageError, match="lexical-weight"):
        index_paths(tmp_path / "s.db", [corpus], IndexOptions(lexical_weight=-0.5, device="cpu"), encoder=encoder)
    assert encoder.calls == 0
    db = tmp_path / "t.db"
    index_paths(db, [corpus], OPTS, encoder=encoder)
    with Store.open(db) as store:
        model_before = store.active_model()
    with pytest.raises(UsageError, match="lexical-weight"):
        retrain_index(db, lexical_weight=float("nan"), device="cpu")
    with Store.open(db) as store:
        assert store.active_model() == model_before  # nothing retrained, nothing lost


class _LongDocFake(FakeEncoder):
    """A fake encoder with ``encode_long``: fixed 50-character windows, embedded ``window_chunk`` at a time."""

    window_chunk = 4

    def __init__(self, fail_on_long_chunk: int | None = None) -> None:
        super().__init__()
        self.long_chunks: list[int] = []
        self.fail_on_long_chunk = fail_on_long_chunk

    def encode_long(self, text: str, progress: Callable[[int], None] | None = None) -> np.ndarray:
        pieces = [text[i : i + 50] for i in range(0, len(text), 50)]
        total = np.zeros(self.dim)
        for start in range(0, len(pieces), self.window_chunk):
            if self.fail_on_long_chunk is not None and len(self.long_chunks) == self.fail_on_long_chunk:
                raise KeyboardInterrupt
            chunk = pieces[start : start + self.window_chunk]
            self.long_chunks.append(len(chunk))
            total += (self.encode(chunk) * np.array([len(p) for p in chunk])[:, None]).sum(axis=0)
            if progress:
                progress(sum(len(p) for p in pieces[: start + len(chunk)]))
        return (total / np.linalg.norm(total)).astype(np.float32)


def _with_huge_file(corpus: Path, chars: int = 3000) -> Path:
    huge = corpus / "zz-huge.txt"  # sorted last, but long documents go last whatever their name
    words = ["planet", "orbit", "rocket", "bread", "oven", "wheel", "chain"]
    huge.write_text(" ".join(words[i % len(words)] + str(i) for i in range(chars // 8)))
    return huge


def test_batches_are_bounded_by_characters_and_long_documents_go_alone_after_the_rest(
    tmp_path: Path, corpus: Path
) -> None:
    _with_huge_file(corpus)
    (corpus / "aa-first.txt").write_text("a" * 500)  # sorted first, but longer than the batch budget too
    encoder = FakeEncoder()
    options = IndexOptions(epochs=FAST_EPOCHS, device="cpu", batch_chars=200)  # default batch_docs: 64
    calls: list[list[str]] = []
    encode = encoder.encode

    def spy(texts: Sequence[str]) -> np.ndarray:
        calls.append(list(texts))
        return encode(texts)

    encoder.encode = spy  # type: ignore[method-assign]
    report = index_paths(tmp_path / "s.db", [corpus], options, encoder=encoder)
    assert report.added == 26
    small_calls, long_calls = calls[:-2], calls[-2:]
    assert len(small_calls) > 1  # 24 short documents, more than 200 characters: several batches
    assert all(sum(len(t) for t in call) <= 200 for call in small_calls)
    assert [len(call) for call in long_calls] == [1, 1]
    assert sorted(len(call[0]) for call in long_calls)[0] == 500


def test_interruption_during_a_huge_document_keeps_the_small_ones_committed(tmp_path: Path, corpus: Path) -> None:
    huge = _with_huge_file(corpus)
    db = tmp_path / "s.db"
    options = IndexOptions(epochs=FAST_EPOCHS, device="cpu", batch_chars=1000)
    with pytest.raises(KeyboardInterrupt):
        index_paths(db, [corpus], options, encoder=_LongDocFake(fail_on_long_chunk=3))
    with Store.open(db) as store:
        assert store.count() == 24  # every small file; not the huge one
        assert str(huge.resolve()) not in {row[0] for row in store.db.execute("SELECT path FROM documents")}
    resumed = _LongDocFake()
    events: list[tuple[str, int, int]] = []
    report = index_paths(db, [corpus], options, encoder=resumed, progress=lambda *e: events.append(e))
    assert report.unchanged == 24 and report.added == 1 and report.total_documents == 25
    assert resumed.encoded and all(len(text) <= 50 for text in resumed.encoded)  # only the huge one, in windows
    assert max(resumed.long_chunks) <= resumed.window_chunk and len(resumed.long_chunks) > 3
    embed = [(done, total) for phase, done, total in events if phase == "embed"]
    total = len(huge.read_text())
    assert all(t == total for _, t in embed) and embed[-1][0] == total
    # one report per window chunk of the huge document, rising
    assert len(embed) >= len(resumed.long_chunks) and [d for d, _ in embed] == sorted(d for d, _ in embed)
