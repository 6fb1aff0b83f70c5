"""The static tier (:mod:`semhash.static`): encoding, the table's checks, and ``--model static`` end to end.

The unit tests use a small synthetic table (random 8-d token vectors) with the packaged MiniLM's real
``tokenizer.json``; the slow test distils the real table once (about a minute on 2 CPU cores) into the
session's fresh ``SEMHASH_CACHE`` and runs the CLI on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support import SMALL_DOCS
from typer.testing import CliRunner

import semhash.static as static
from semhash.cli import app
from semhash.config import STATIC_MODEL
from semhash.embed import default_model_path
from semhash.errors import ModelLoadError
from semhash.static import StaticEncoder, load_static_table, zipf_weights

DIM = 8


@pytest.fixture(scope="module")
def table_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic static table written the way the real one is (:func:`semhash.static._write_folder`)."""
    from tokenizers import Tokenizer

    tokenizer_file = default_model_path() / "tokenizer.json"
    vocab_size = Tokenizer.from_file(str(tokenizer_file)).get_vocab_size()
    table = np.random.default_rng(0).standard_normal((vocab_size, DIM)).astype(np.float32)
    table[:1000] = 0.0  # padding, unused slots, [UNK], [CLS], [SEP] (ids 0-999 of this vocabulary) weigh nothing
    folder = tmp_path_factory.mktemp("static") / "table"
    static._write_folder(folder, table, tokenizer_file)
    return folder


@pytest.fixture
def encoder(table_folder: Path) -> StaticEncoder:
    table, tokenizer = load_static_table(table_folder)
    return StaticEncoder(table, tokenizer)


def test_encode_is_unit_norm_and_order_free(encoder: StaticEncoder) -> None:
    texts = ["The rocket launch was delayed.", "Knead the dough, then bake the bread.", "bread the bake dough"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # A bag of tokens: the same words in another order give the same vector.
    assert np.allclose(encoder.encode(["dough bread bake the"])[0], vectors[2], atol=1e-6)
    assert encoder.stats.documents == 4


def test_a_text_without_a_known_token_is_the_zero_vector(encoder: StaticEncoder) -> None:
    vectors = encoder.encode(["", "   \n\t ", "\U0001f9ff\U0001fa90", "real words here"])
    assert not vectors[:3].any()
    assert np.isclose(np.linalg.norm(vectors[3]), 1.0, atol=1e-5)


def test_encode_long_equals_encode_across_chunk_boundaries(
    encoder: StaticEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    words = ["planet", "orbit", "telescope", "galaxy", "unbelievably", "microprocessor", "bread\n", "tyre"]
    text = " ".join(rng.choice(words, size=400)) + "\n" + "\n".join(rng.choice(words, size=200))
    whole = encoder.encode([text])[0]
    monkeypatch.setattr(static, "CHUNK_CHARS", 97)  # pieces cut mid-text, at spaces and at newlines
    seen: list[int] = []
    long = encoder.encode_long(text, progress=seen.append)
    assert len(seen) > 10 and seen[-1] == len(text)
    assert np.allclose(long, whole, atol=1e-5)
    # encode() sends a text over the chunk size through encode_long itself.
    assert np.allclose(encoder.encode([text])[0], whole, atol=1e-5)


def test_zipf_weights_grow_with_rank_and_stay_below_one() -> None:
    weights = zipf_weights(30522, 1000)
    assert np.all(np.diff(weights) >= 0)
    assert np.all(weights[:1001] == weights[0])  # every id before the first word counts as the most frequent
    assert 0 < weights[0] < weights[-1] < 1
    assert weights[5000] > 0.5 > weights[1000]  # a rare word counts far more than "the"


def _rewrite(folder: Path, array: np.ndarray | None = None, raw: bytes | None = None, **record: object) -> None:
    """Replace vectors.npy and re-stamp its sha256 (a forged folder whose record matches its file)."""
    path = folder / "vectors.npy"
    if array is not None:
        np.save(path, array, allow_pickle=True)
    if raw is not None:
        path.write_bytes(raw)
    meta = json.loads((folder / "static.json").read_text())
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    meta.update(record)
    (folder / "static.json").write_text(json.dumps(meta))


DAMAGES: dict[str, Callable[[Path], None]] = {
    "sha256 mismatch": lambda f: (f / "vectors.npy").write_bytes((f / "vectors.npy").read_bytes()[:-4] + b"\0\0\0\0"),
    "wrong shape": lambda f: _rewrite(f, np.zeros((5, DIM), np.float32)),
    "shape forged in the record": lambda f: _rewrite(f, np.zeros((5, DIM), np.float32), shape=[5, DIM]),
    "wrong dtype": lambda f: _rewrite(f, np.zeros((30522, DIM), np.float64)),
    "pickle inside .npy": lambda f: _rewrite(f, np.array([{"a": 1}, None], dtype=object)),
    "truncated": lambda f: _rewrite(f, raw=(f / "vectors.npy").read_bytes()[:5000]),
    "missing record": lambda f: (f / "static.json").unlink(),
    "record not JSON": lambda f: (f / "static.json").write_text("{not json"),
    "damaged tokenizer": lambda f: (f / "tokenizer.json").write_text("[]"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_or_forged_table_is_a_one_line_model_load_error(
    table_folder: Path, tmp_path: Path, damage: str
) -> None:
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("vectors.npy", "tokenizer.json", "static.json"):
        (folder / name).write_bytes((table_folder / name).read_bytes())
    load_static_table(folder)  # the intact copy loads
    DAMAGES[damage](folder)
    with pytest.raises(ModelLoadError) as caught:
        load_static_table(folder)
    message = str(caught.value)
    assert "\n" not in message and str(folder) in message and "delete that folder" in message


def test_the_cli_refuses_a_damaged_cached_table_in_one_line(
    table_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMHASH_CACHE", str(tmp_path / "cache"))
    folder = static.static_folder()
    folder.mkdir(parents=True)
    for name in ("vectors.npy", "tokenizer.json", "static.json"):
        (folder / name).write_bytes((table_folder / name).read_bytes())
    DAMAGES["truncated"](folder)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("a few words to embed")
    result = CliRunner().invoke(app, ["index", str(corpus), "--db", str(tmp_path / "s.db"), "--model", "static"])
    assert result.exit_code == 1, result.output
    assert "damaged" in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error")]) == 1


# -- end to end: the real table, distilled into the session's fresh cache ---------------------------------
@pytest.mark.slow
def test_index_query_and_dedup_with_model_static(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for name, text in SMALL_DOCS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
    (corpus / "bikes" / "tyre-copy.txt").write_text(SMALL_DOCS["bikes/tyre.txt"].replace("flat", "flat,"))
    db = str(tmp_path / "s.db")
    runner = CliRunner()
    result = runner.invoke(app, ["index", str(corpus), "--db", db, "--model", "static", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == 10
    assert (static.static_folder() / "static.json").exists()  # distilled into this session's cache

    info = json.loads(runner.invoke(app, ["info", "--db", db, "--json"]).output)
    assert info["model_name"] == STATIC_MODEL and info["embedding_dim"] == 384

    result = runner.invoke(app, ["query", "how do I repair a punctured bike wheel", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.output.splitlines()]
    assert hits[0]["path"].endswith(("bikes/tyre.txt", "bikes/tyre-copy.txt")) and hits[0]["cosine"] > 0.4

    result = runner.invoke(app, ["dedup", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    pairs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [{Path(p["kept_location"]).name, Path(p["duplicate_location"]).name} for p in pairs] == [
        {"tyre.txt", "tyre-copy.txt"}
    ]
    # The default threshold was chosen for MiniLM: on the static tier dedup says so, once, on stderr.
    assert result.stderr.count("note: this index uses the static tier") == 1, result.stderr
    result = runner.invoke(app, ["dedup", "--db", db, "--json", "--threshold", "0.9"])
    assert result.exit_code == 0 and "static tier" not in result.stderr, result.output

    # No exported runtime exists for the static tier, and none is needed: each says so in one line.
    result = runner.invoke(app, ["query", "bread", "--db", db, "--runtime", "onnx"])
    assert result.exit_code == 1 and "static tier" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["runtime", "info", "--db", db])
    assert result.exit_code == 0 and "needs no exported runtime" in result.output
