"""Issue 21, the matched passage: window vectors stored at index time, kept in step, and read back per hit."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import FAST_EPOCHS, FakeEncoder, write_corpus
from typer.testing import CliRunner

from semhash.api import SemanticIndex
from semhash.cli import app
from semhash.cli.render import snippet_cell
from semhash.embed import EncodeStats, Windows, embed_spans, embed_streamed, spread_windows
from semhash.ingest import IndexOptions, index_paths, prune_index, remove_paths
from semhash.search import QueryOptions, Searcher
from semhash.search.snippets import clean_markup, fit, highlights, query_terms
from semhash.serve import create_app
from semhash.store import SCHEMA_VERSION, WINDOWS_TABLE, Store

OPTS = IndexOptions(epochs=int(FAST_EPOCHS), device="cpu")
runner = CliRunner()
#: Words per window of the fake encoder below.
WORDS = 12


class WindowFakeEncoder(FakeEncoder):
    """:class:`FakeEncoder` that cuts texts into windows of ``WORDS`` words and hands them back, as the real ones do."""

    name = "fake-bow"

    def __init__(self, max_windows: int = 0) -> None:
        super().__init__()
        self.max_windows = max_windows

    def spans(self, text: str) -> list[tuple[int, int, int]]:
        words = [m.span() for m in re.finditer(r"\S+", text)]
        cuts = [(words[i][0], words[min(i + WORDS, len(words)) - 1][1]) for i in range(0, len(words), WORDS)]
        every = [(a, b, WORDS) for a, b in cuts] or [(0, len(text), 1)]
        return [every[i] for i in spread_windows(len(every), self.max_windows)]

    def encode_windows(self, texts: Sequence[str]) -> tuple[np.ndarray, Windows]:
        stats = EncodeStats()
        return embed_spans(texts, [self.spans(t) for t in texts], FakeEncoder.encode.__get__(self), self.dim, stats)

    def encode_long(
        self,
        text: str,
        progress: Callable[[int], None] | None = None,
        keep: list[tuple[int, int, np.ndarray]] | None = None,
    ) -> np.ndarray:
        windows = ((text[a:b], n, b) for a, b, n in self.spans(text))
        return embed_streamed(windows, FakeEncoder.encode.__get__(self), self.dim, EncodeStats(), 4, progress, keep)


def _rows(db: Path) -> dict[str, list[tuple[int, int]]]:
    """``{file name: [(start, end), ...]}`` of the stored windows, and a check that none is orphaned."""
    conn = sqlite3.connect(db)
    try:
        orphans = conn.execute(
            f"SELECT count(*) FROM {WINDOWS_TABLE} WHERE doc_id NOT IN (SELECT id FROM documents)"
        ).fetchone()[0]
        assert orphans == 0
        rows = conn.execute(
            f"SELECT d.path, w.char_start, w.char_end FROM {WINDOWS_TABLE} w JOIN documents d ON d.id = w.doc_id"
            " ORDER BY d.path, w.char_start"
        ).fetchall()
    finally:
        conn.close()
    out: dict[str, list[tuple[int, int]]] = {}
    for path, a, b in rows:
        out.setdefault(Path(path).name, []).append((a, b))
    return out


def _expected(encoder: WindowFakeEncoder, path: Path) -> list[tuple[int, int]]:
    return [(a, b) for a, b, _ in encoder.spans(path.read_text())]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write_corpus(root, per_topic=3)
    return root


def test_window_rows_follow_add_change_remove_and_prune(tmp_path: Path, folder: Path) -> None:
    db, encoder = tmp_path / "s.db", WindowFakeEncoder()
    extra = folder / "extra.txt"
    extra.write_text(" ".join(["zeppelin harbour dawn"] * 10))  # 30 words: three windows
    index_paths(db, [folder], OPTS, encoder=encoder)
    rows = _rows(db)
    assert rows["extra.txt"] == _expected(encoder, extra) and len(rows["extra.txt"]) == 3
    assert len(rows) == 10  # every document has its windows
    # changed: the old windows go, the new ones come, in the same run
    extra.write_text("a submarine surfaced")
    index_paths(db, [folder], OPTS, encoder=encoder)
    assert _rows(db)["extra.txt"] == [(0, len("a submarine surfaced"))]
    # added
    more = folder / "more.txt"
    more.write_text(" ".join(["another submarine story"] * 5))
    index_paths(db, [folder], OPTS, encoder=encoder)
    assert _rows(db)["more.txt"] == _expected(encoder, more)
    # removed with `semhash remove`
    remove_paths(db, [more])
    assert "more.txt" not in _rows(db)
    more.unlink()  # else the next run indexes it again
    # pruned, and dropped when a file vanished under an indexed folder
    extra.unlink()
    prune_index(db)
    assert "extra.txt" not in _rows(db)
    (folder / "space" / "space-0.txt").unlink()
    index_paths(db, [folder], OPTS, encoder=encoder)
    rows = _rows(db)
    assert "space-0.txt" not in rows and len(rows) == 8
    with Store.open(db) as store:
        assert store.window_counts() == (sum(len(v) for v in rows.values()), store.count())


def test_triggers_drop_windows_whatever_writes(tmp_path: Path, folder: Path) -> None:
    db = tmp_path / "s.db"
    index_paths(db, [folder], OPTS, encoder=WindowFakeEncoder())
    conn = sqlite3.connect(db)
    first, second = (r[0] for r in conn.execute("SELECT id FROM documents ORDER BY id LIMIT 2"))
    count = f"SELECT count(*) FROM {WINDOWS_TABLE} WHERE doc_id = ?"
    windows = conn.execute(count, [first]).fetchone()[0]
    assert windows >= 1
    conn.execute("UPDATE documents SET code = NULL, recon_error = 0.5")  # codes: windows stay
    assert conn.execute(count, [first]).fetchone()[0] == windows
    conn.execute("UPDATE documents SET embedding = embedding WHERE id = ?", [first])  # re-embedded: they go
    assert conn.execute(count, [first]).fetchone()[0] == 0
    conn.execute("DELETE FROM documents WHERE id = ?", [second])
    assert conn.execute(count, [second]).fetchone()[0] == 0
    conn.commit()
    conn.close()


def _long_doc(root: Path) -> tuple[Path, str]:
    filler = " ".join(["recipe oven flour butter sugar dough"] * 8)  # 48 words: four windows
    text = f"{filler} the <b>zeppelin</b> drifted over the harbour at dawn [see](http://x) {filler}"
    path = root / "long.md"
    path.write_text(text)
    return path, text


def test_the_passage_is_the_stored_window_nearest_the_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "docs"
    write_corpus(root, per_topic=2)
    _, text = _long_doc(root)
    db, encoder = tmp_path / "s.db", WindowFakeEncoder()
    index_paths(db, [root], OPTS, encoder=encoder)
    sqlite3.connect(db).execute(  # pages, as a PDF would have them (stored windows have their page already)
        f"UPDATE {WINDOWS_TABLE} SET page = CASE WHEN char_start < 200 THEN 1 ELSE 2 END"
        " WHERE doc_id = (SELECT id FROM documents WHERE path LIKE '%long.md')"
    ).connection.commit()
    with Searcher(db, encoder=encoder) as searcher:
        before = len(encoder.encoded)
        hits = searcher.query("zeppelin harbour", QueryOptions(k=3, mode="hybrid"))
        assert encoder.encoded[before:] == ["zeppelin harbour"]  # the passage took no model call
    best = hits[0]
    assert best.path.endswith("long.md") and best.passage is not None
    passage = best.passage
    start, end = passage["start"], passage["end"]
    assert 0 < start < text.index("zeppelin") < end  # past the first window
    assert passage["source"] == "stored" and passage["page"] == 2
    assert "<b>" not in passage["text"] and "the zeppelin drifted" in passage["text"]
    assert "[see]" not in passage["text"] and "see" in passage["text"]
    marked = [passage["text"][a:b].lower() for a, b in passage["highlights"]]
    assert "zeppelin" in marked and "harbour" in marked
    assert "zeppelin" in best.snippet
    assert [best.snippet[a:b] for a, b in passage["snippet_highlights"]][:1] == ["zeppelin"]
    assert all(h.passage is not None and h.passage["source"] == "stored" for h in hits)
    # the CLI's --json, the table, the server and the Python API carry it
    monkeypatch.setattr("semhash.embed.load_encoder", lambda *args, **kwargs: encoder)
    result = runner.invoke(app, ["query", "zeppelin harbour", "--db", str(db), "-k", "1", "--mode", "hybrid", "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert (row["passage"]["start"], row["passage"]["end"], row["passage"]["page"]) == (start, end, 2)
    table = runner.invoke(app, ["query", "zeppelin harbour", "--db", str(db), "-k", "1", "--mode", "hybrid"])
    assert table.exit_code == 0 and "zeppelin" in table.output and "p.2" in table.output
    with TestClient(create_app(db, encoder=encoder)) as client:
        body = client.get("/api/query", params={"q": "zeppelin harbour", "k": 1, "mode": "hybrid"}).json()
        assert body["hits"][0]["passage"]["start"] == start
    index = SemanticIndex(db, encoder=encoder)
    assert index.query("zeppelin harbour", k=1, mode="hybrid")[0].passage == passage


def test_documents_without_windows_fall_back(tmp_path: Path, folder: Path) -> None:
    """Indexed before schema 4 (no rows): the opening is the snippet, and ``--passages`` embeds now."""
    _long_doc(folder)
    db, encoder = tmp_path / "s.db", WindowFakeEncoder()
    index_paths(db, [folder], OPTS, encoder=encoder)
    conn = sqlite3.connect(db)  # what a version 3 index looks like
    conn.execute(f"DROP TABLE {WINDOWS_TABLE}")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    with Store.open(db, write=True) as store:  # any open that can write migrates
        assert store.window_counts() == (0, 0)
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    with Searcher(db, encoder=encoder) as searcher:
        plain = searcher.query("zeppelin harbour", QueryOptions(k=1, mode="hybrid"))
        embedded = searcher.query("zeppelin harbour", QueryOptions(k=1, mode="hybrid", passages=True))
    assert plain[0].passage is None and plain[0].snippet.startswith("recipe")
    assert embedded[0].passage is not None and embedded[0].passage["source"] == "embedded"
    # `index` fills the windows of the documents it embeds again (here: the changed one)
    long_md = folder / "long.md"
    long_md.write_text(long_md.read_text() + " zeppelin")
    index_paths(db, [folder], OPTS, encoder=encoder)
    assert _rows(db).keys() == {"long.md"}


def test_max_windows_stores_the_windows_it_embedded(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    path, _ = _long_doc(root)
    db, encoder = tmp_path / "s.db", WindowFakeEncoder(max_windows=2)
    index_paths(db, [root], OPTS, encoder=encoder)
    every = WindowFakeEncoder().spans(path.read_text())
    assert _rows(db)["long.md"] == [(a, b) for a, b, _ in (every[0], every[-1])]


def test_a_long_document_alone_stores_its_windows(tmp_path: Path) -> None:
    """Documents over ``batch_chars`` take ``encode_long``: its windows are kept as they stream."""
    root = tmp_path / "docs"
    root.mkdir()
    path, _ = _long_doc(root)
    db, encoder = tmp_path / "s.db", WindowFakeEncoder()
    index_paths(db, [root], IndexOptions(epochs=int(FAST_EPOCHS), device="cpu", batch_chars=50), encoder=encoder)
    assert _rows(db)["long.md"] == _expected(encoder, path)


def test_markup_is_cleaned_and_query_words_found() -> None:
    raw = "<!-- generated --> # Title\n\n**Bold** `code` [a link](http://x.y) &amp; <p>para</p>\n```sh\nls\n```"
    assert clean_markup(raw) == "Title Bold code a link & para ls"
    assert clean_markup("-->tail of a comment") == "tail of a comment"
    assert query_terms("How do I set compression levels?") == ["set", "compression", "level"]
    assert len(query_terms(" ".join(f"word{i}" for i in range(500)))) == 64  # a pasted page: its first words
    text = "Compression level 3; levels up to 19."
    assert [text[a:b] for a, b in highlights(text, query_terms("compression levels"))] == [
        "Compression", "level", "levels"
    ]  # fmt: skip
    long = "word " * 40 + "needle " + "word " * 40
    piece, marks = fit(long, highlights(long, ["needle"]), 60)
    assert len(piece) <= 60 and piece.startswith("…") and piece.endswith("…")
    assert [piece[a:b] for a, b in marks] == ["needle"]
    assert fit("short", [], 60) == ("short", [])


def test_the_terminal_snippet_fits_its_room() -> None:
    from semhash.types import Hit

    text = "alpha " * 50 + "zeppelin " + "omega " * 50
    marks = highlights(text, ["zeppelin"])
    passage = {"text": text, "highlights": marks, "page": 3}
    hit = Hit(rank=1, id=1, path="/a", record=0, distance=0, code=0, cosine=0.5, snippet="x", passage=passage)
    for room in (30, 80, 200):
        cell = snippet_cell(hit, room)
        assert len(cell.plain) <= room and cell.plain.startswith("p.3 ") and "zeppelin" in cell.plain
        assert [cell.plain[s.start : s.end] for s in cell.spans if s.style == "bold"] == ["zeppelin"]
    plain = snippet_cell(Hit(rank=1, id=1, path="/a", record=0, distance=0, code=0, cosine=0.5, snippet="[b]x"), 30)
    assert plain.plain == "[b]x"  # no passage: the opening, and brackets are text, not markup


@pytest.mark.slow
def test_a_passage_past_the_first_window_with_the_real_model(tmp_path: Path) -> None:
    """all-MiniLM-L6-v2, a small document of several 254-token windows: the matching one is found, not the first."""
    from semhash.embed import SentenceTransformerEncoder, load_encoder

    root = tmp_path / "docs"
    root.mkdir()
    cooking = "To make bread, mix flour, water, yeast and salt, knead the dough and let it rise in a warm place. "
    needle = "To fix a flat bicycle tyre, remove the wheel, find the puncture in the inner tube and patch it. "
    (root / "guide.txt").write_text(cooking * 25 + needle * 3 + cooking * 10)
    (root / "other.txt").write_text("Notes about the planets of the solar system and their moons.")
    encoder = cast("SentenceTransformerEncoder", load_encoder(device="cpu"))
    db = tmp_path / "s.db"
    index_paths(db, [root], OPTS, encoder=encoder)
    with Store.open(db) as store:
        windows, documents = store.window_counts()
    assert windows >= 4 and documents == 2
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.query("how do I repair a puncture in my bike's tyre?", QueryOptions(k=2, mode="semantic"))
    guide = next(h for h in hits if h.path.endswith("guide.txt"))
    assert guide.passage is not None and guide.passage["source"] == "stored"
    text = (root / "guide.txt").read_text()
    assert guide.passage["start"] > 0 and "puncture" in text[guide.passage["start"] : guide.passage["end"]]
    assert "puncture" in guide.snippet and guide.passage["cosine"] > (guide.cosine or 0)
    # --max-windows 2 keeps the first and last windows: the needle is in neither, and no other is stored
    capped = tmp_path / "capped.db"
    encoder.max_windows = 2  # what `--max-windows 2` loads (an encoder given here is not reloaded)
    index_paths(capped, [root], OPTS, encoder=encoder)
    with Store.open(capped) as store:
        assert store.window_counts() == (3, 2)


def test_window_spans_pool_as_the_pooled_path() -> None:
    """``embed_spans`` pools exactly as ``embed_pooled`` and hands back every window, in order."""
    from semhash.embed import embed_pooled

    texts = ["alpha beta gamma delta", "one two three four five six"]
    spans = [[(0, 10, 2), (11, 22, 2)], [(0, 7, 2), (8, 18, 2), (19, 27, 2)]]
    encoder = FakeEncoder()
    pooled, windows = embed_spans(texts, spans, encoder.encode, encoder.dim, EncodeStats())
    pieces = [[(t[a:b], n) for a, b, n in s] for t, s in zip(texts, spans, strict=True)]
    assert np.allclose(pooled, embed_pooled(pieces, encoder.encode, EncodeStats()), atol=1e-6)
    assert windows.owner.tolist() == [0, 0, 1, 1, 1] and windows.of(1)[0].tolist() == [[0, 7], [8, 18], [19, 27]]
    kept: list[tuple[int, int, np.ndarray]] = []
    stream = ((texts[1][a:b], n, b) for a, b, n in spans[1])
    embed_streamed(stream, encoder.encode, encoder.dim, EncodeStats(), 2, None, kept)
    assert [(a, b) for a, b, _ in kept] == [(0, 7), (8, 18), (19, 27)]
    assert np.allclose(np.stack([v for _, _, v in kept]).astype(np.float32), windows.of(1)[1], atol=1e-3)


@pytest.mark.slow
def test_the_page_marks_the_passages_words(tmp_path: Path, folder: Path) -> None:
    """The server page shows the passage as the snippet and marks the words the server found (headless chromium)."""
    from test_serve import CHROMIUM, _browser_skip_reason, running

    reason = _browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    _long_doc(folder)
    db, encoder = tmp_path / "s.db", WindowFakeEncoder()
    index_paths(db, [folder], OPTS, encoder=encoder)
    with running(create_app(db, encoder=encoder)) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(base + "/#q=zeppelin%20harbour&mode=hybrid")
            first = page.locator("li.hit").first
            expect(first).to_be_visible()
            expect(first.locator(".path")).to_contain_text("long.md")
            marks = first.locator(".snippet mark").all_inner_texts()
            assert [m.lower() for m in marks][:2] == ["zeppelin", "harbour"]
            assert "<b>" not in first.locator(".snippet").inner_text()
            assert "passage: characters" in (first.locator(".meta").get_attribute("title") or "")
        finally:
            browser.close()


def test_a_one_window_document_stores_no_second_vector_and_damage_is_skipped(tmp_path: Path, folder: Path) -> None:
    """One window: its vector is the document's embedding (NULL in ``windows``); a damaged vector is left out."""
    note = folder / "note.txt"
    note.write_text("a zeppelin note")
    _long_doc(folder)
    db, encoder = tmp_path / "s.db", WindowFakeEncoder()
    index_paths(db, [folder], OPTS, encoder=encoder)
    conn = sqlite3.connect(db)
    rows = conn.execute(
        f"SELECT w.char_start, w.char_end, w.vector IS NULL FROM {WINDOWS_TABLE} w JOIN documents d"
        " ON d.id = w.doc_id WHERE d.path LIKE '%note.txt'"
    ).fetchall()
    assert rows == [(0, len("a zeppelin note"), 1)]
    assert conn.execute(f"SELECT count(*) FROM {WINDOWS_TABLE} WHERE vector IS NULL").fetchone()[0] == 1
    # damage the long document's best window (the one holding "zeppelin"): another stored one is chosen, no error
    damaged, start = conn.execute(
        f"SELECT w.id, w.char_start FROM {WINDOWS_TABLE} w JOIN documents d ON d.id = w.doc_id"
        " WHERE d.path LIKE '%long.md' AND instr(substr(d.text, w.char_start + 1, w.char_end - w.char_start),"
        " 'zeppelin') > 0"
    ).fetchone()
    conn.execute(f"UPDATE {WINDOWS_TABLE} SET vector = x'00' WHERE id = ?", [damaged])
    conn.commit()
    conn.close()
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.query("zeppelin note", QueryOptions(k=20, mode="hybrid", collapse=False))
    by_name = {Path(h.path).name: h for h in hits}
    short = by_name["note.txt"]
    assert short.passage is not None and short.passage["source"] == "stored"
    assert (short.passage["start"], short.passage["end"]) == (0, len("a zeppelin note"))
    assert short.cosine is not None and abs(short.passage["cosine"] - short.cosine) < 1e-2
    long_hit = by_name["long.md"]
    assert long_hit.passage is not None and long_hit.passage["source"] == "stored"
    assert long_hit.passage["start"] != start


def test_info_counts_the_stored_windows(tmp_path: Path, folder: Path) -> None:
    db = tmp_path / "s.db"
    index_paths(db, [folder], OPTS, encoder=WindowFakeEncoder())
    result = runner.invoke(app, ["info", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert row["documents_with_windows"] == row["documents"] == 9 and row["windows"] == 18
    shown = runner.invoke(app, ["info", "--db", str(db)])
    assert "18 stored, for 9 of the documents" in shown.output


def test_passage_offsets_are_characters_in_non_ascii_text(tmp_path: Path) -> None:
    """SQLite's substr and Python's slices agree on offsets in text with accents and emoji."""
    root = tmp_path / "docs"
    root.mkdir()
    text = " ".join(["café naïve 🚲 crème brûlée"] * 10) + " the zeppelin drifted " + " ".join(["żółw 🐢"] * 20)
    (root / "u.txt").write_text(text)
    db, encoder = tmp_path / "s.db", WindowFakeEncoder()
    index_paths(db, [root], OPTS, encoder=encoder)
    with Store.open(db) as store:
        (doc_id,) = store.windows([1]).keys()
        windows = store.windows([doc_id])[doc_id]
        spans = [(doc_id, int(a), int(b)) for a, b in zip(windows.starts, windows.ends, strict=True)]
        assert len(spans) > 3
        assert store.text_slices(spans) == {(doc_id, a): text[a:b] for _, a, b in spans}
    with Searcher(db, encoder=encoder) as searcher:
        (hit,) = searcher.query("zeppelin", QueryOptions(k=1, mode="hybrid"))
    assert hit.passage is not None
    start, end = hit.passage["start"], hit.passage["end"]
    assert hit.passage["text"] == " ".join(text[start:end].split())
