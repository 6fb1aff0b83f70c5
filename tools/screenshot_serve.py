"""Screenshot of the search page (``docs/serve.png``): the sample corpus, the server, a query, headless Chromium.

    .venv/bin/python -m tools.screenshot_serve [--query TEXT] [--out docs/serve.png] [--db semhash.db]

Without ``--db`` it copies ``data/sample`` into a fresh temporary folder (``docs/`` beside ``semhash.db``),
indexes it there with the packaged model on the CPU, and removes it all afterwards: the picture shows paths
relative to that folder and the database's name, so nothing of the machine it was taken on. It checks that
before it writes the picture (the temporary folder must appear nowhere on the page). ``--db`` screenshots an
existing index instead (its paths are then shown relative to its own folder).

Needs playwright and Debian's chromium (``apt-get install -y chromium``; never ``playwright install``).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SEMHASH = [sys.executable, "-m", "semhash.cli"]


def build_index(folder: Path) -> Path:
    """``data/sample`` copied to ``folder/docs`` and indexed into ``folder/semhash.db``; returns the database."""
    docs = folder / "docs"
    shutil.copytree(ROOT / "data" / "sample", docs)
    db = folder / "semhash.db"
    subprocess.run([*SEMHASH, "index", str(docs), "--db", str(db), "--device", "cpu"], check=True)
    return db


def wait_until_up(base: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.3)


def screenshot(db: Path, query: str, out: Path, chromium: str, private: str | None) -> None:
    """Serve ``db`` on a free loopback port and write the page after ``query`` to ``out``.

    ``private``: a path that must not appear anywhere on the page (the folder the index was built in).
    """
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([*SEMHASH, "serve", "--db", str(db), "--port", str(port), "--device", "cpu"])
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1000, "height": 760})
                page.goto(base + "/")
                page.fill("#q", query)
                page.press("#q", "Enter")
                page.locator("li.hit").first.wait_for()
                page.wait_for_function("document.getElementById('info').textContent.includes('documents')")
                if private is not None and private in page.locator("body").inner_text():
                    raise SystemExit(f"the page shows the private folder {private}: not taking the picture")
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=False)
            finally:
                browser.close()
        print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=None, help="an existing index (default: data/sample, fresh)")
    parser.add_argument("--query", default="how do I fix a flat tyre on my bike")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.png")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    if args.db is not None:
        screenshot(args.db, args.query, args.out, args.chromium, private=None)
        return
    with tempfile.TemporaryDirectory(prefix="semhash-screenshot-") as folder:
        db = build_index(Path(folder))
        screenshot(db, args.query, args.out, args.chromium, private=folder)


if __name__ == "__main__":
    main()
