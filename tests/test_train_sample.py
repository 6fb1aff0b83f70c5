"""Training set of the hashing model: a seeded sample beyond ``max_train_docs``, in the corpus's order."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import FAST_EPOCHS, FakeEncoder

from semhash.errors import UsageError
from semhash.ingest import IndexOptions, index_paths
from semhash.store import Store


def _codes_by_location(db: Path) -> dict[tuple[str, int], int]:
    with Store.open(db) as store:
        ids = {state[0]: key for key, state in store.document_states().items()}
        code_ids, codes = store.codes()
    return {ids[i]: c for i, c in zip(code_ids.tolist(), codes.tolist(), strict=True)}


def test_a_corpus_larger_than_max_train_docs_trains_on_a_seeded_sample(corpus: Path, tmp_path: Path) -> None:
    trained_on = []
    codes = []
    for name in ("a", "b"):
        db = tmp_path / f"{name}.db"
        options = IndexOptions(epochs=FAST_EPOCHS, max_train_docs=10)
        report = index_paths(db, [corpus], options, encoder=FakeEncoder())
        assert report.encoded == report.added == 24  # every document is coded, not only the sample
        with Store.open(db) as store:
            trained_on.append(store.active_model().trained_on)  # type: ignore[union-attr]
        codes.append(_codes_by_location(db))
    assert trained_on == [10, 10]
    assert codes[0] == codes[1]  # the sample is seeded


def test_the_model_does_not_depend_on_the_order_documents_were_stored_in(corpus: Path, tmp_path: Path) -> None:
    # batch_docs=1 commits documents file by file; one batch stores them sorted by length: other row ids.
    results = []
    for batch_docs in (1, 64):
        db = tmp_path / f"batch{batch_docs}.db"
        index_paths(db, [corpus], IndexOptions(epochs=FAST_EPOCHS, batch_docs=batch_docs), encoder=FakeEncoder())
        with Store.open(db) as store:
            order = [key for key, _ in sorted(store.document_states().items(), key=lambda item: item[1][0])]
        results.append((order, _codes_by_location(db)))
    assert results[0][0] != results[1][0]  # the rows really were stored in different orders
    assert results[0][1] == results[1][1]


def test_max_train_docs_must_be_positive() -> None:
    with pytest.raises(UsageError, match="max_train_docs"):
        IndexOptions(max_train_docs=0)
