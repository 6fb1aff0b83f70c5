"""Screenshot of the search page (``docs/serve.png``): a small index, the server, a query, headless Chromium.

    .venv/bin/python scripts/screenshot_serve.py [--db semhash.db] [--query TEXT] [--out docs/serve.png]

Without ``--db`` it indexes ``data/sample`` into ``.cache/screenshot.db`` first (the packaged model).
Needs playwright and Debian's chromium (``apt-get install -y chromium``; never ``playwright install``).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--query", default="how do I fix a flat tyre on my bike")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    db = args.db
    if db is None:
        db = ROOT / ".cache" / "screenshot.db"
        if not db.exists():
            semhash = [sys.executable, "-m", "semhash.cli"]
            subprocess.run([*semhash, "index", str(ROOT / "data" / "sample"), "--db", str(db), "--device", "cpu"],
                           check=True)  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "semhash.cli", "serve", "--db", str(db), "--port", str(port)])
    try:
        import httpx
        from playwright.sync_api import sync_playwright

        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            page.goto(base + "/")
            page.fill("#q", args.query)
            page.press("#q", "Enter")
            page.locator("li.hit").first.wait_for()
            page.wait_for_function("document.getElementById('info').textContent.includes('documents')")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=False)
            browser.close()
        print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
