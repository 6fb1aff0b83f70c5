"""The commands as a person runs them: on a real pseudo-terminal, and with stderr going to a log file.

Issue 17: ``semhash index`` and ``semhash train`` died in 0.8 s on any terminal (rich's progress bar was
given a lazy stand-in for its console, hidden from mypy by a ``# type: ignore``), and the suite never ran a
command on a terminal. Here every command that draws progress bars or tables runs under a pty, with the
real model, and its exit code and screen are checked; then the plain progress lines a log file gets.
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from support import SMALL_DOCS

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).parent.parent / "data" / "sample"


def _command() -> list[str]:
    """The installed ``semhash`` script beside this interpreter (``python -m semhash.cli`` without one)."""
    script = Path(sys.executable).with_name("semhash")
    return [str(script)] if script.exists() else [sys.executable, "-m", "semhash.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "TERM": "xterm-256color", "OMP_NUM_THREADS": "1", **extra}
    env.pop("COLUMNS", None)
    env.pop("NO_COLOR", None)
    return env


def run_on_terminal(args: list[str | bytes], cwd: Path, timeout: float = 240.0) -> tuple[int, str]:
    """Run ``semhash ARGS`` with stdin, stdout and stderr on a new pseudo-terminal of 120x40; (exit code, screen)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [*_command(), *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=_env(), start_new_session=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"semhash {args} did not end in {timeout} s: {b''.join(chunks)[-2000:]!r}")
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal's other end is gone
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def _clean(screen: str) -> str:
    """The screen without escape sequences, carriage returns as line ends."""
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "\n")


def _assert_clean_run(code: int, screen: str) -> None:
    assert code == 0, screen[-3000:]
    for bad in ("Traceback", "TypeError", "lost sys.stderr", "Error"):
        assert bad not in screen, screen[-3000:]


@pytest.fixture(scope="module")
def terminal_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shipped sample indexed on a terminal (the crash of issue 17); (folder, database)."""
    root = tmp_path_factory.mktemp("terminal")
    corpus = root / "sample"
    shutil.copytree(SAMPLE, corpus)
    db = root / "t.db"
    code, screen = run_on_terminal(["index", str(corpus), "--db", str(db), "--device", "cpu"], cwd=root)
    _assert_clean_run(code, screen)
    text = _clean(screen)
    assert "to embed: 130 documents from 130 files" in text  # the plan, before the model loads
    assert "embedding" in text and "training" in text  # the bars were drawn
    assert "\x1b[" in screen  # ...as a terminal draws them
    assert "indexed " in text and "130 added" in text
    return corpus, db


def test_query_on_a_terminal_draws_a_table(terminal_index: tuple[Path, Path]) -> None:
    corpus, db = terminal_index
    code, screen = run_on_terminal(["query", "how do I fix a flat tyre on my bike", "--db", str(db)], cwd=corpus.parent)
    _assert_clean_run(code, screen)
    text = _clean(screen)
    assert "cycling" in text and "│" in text  # a rich table, with the cycling posts in it


def test_radius_with_nothing_in_range_says_no_match(terminal_index: tuple[Path, Path]) -> None:
    """Issue 17: ``--radius 1`` with nothing in range was ``ValueError: range() arg 3 must not be zero``."""
    corpus, db = terminal_index
    code, screen = run_on_terminal(
        ["query", "quantum chromodynamics lattice", "--radius", "0", "--no-rerank", "--db", str(db)], cwd=corpus.parent
    )
    _assert_clean_run(code, screen)
    assert "no match" in _clean(screen) or "│" in _clean(screen)


def test_a_query_of_bytes_that_are_not_utf8_is_searched(terminal_index: tuple[Path, Path]) -> None:
    """Issue 18: invalid UTF-8 on the command line reached the tokenizer as lone surrogates (TypeError)."""
    corpus, db = terminal_index
    code, screen = run_on_terminal(["query", b"bicycle caf\xe9 \xff\xfe tyre", "--db", str(db)], cwd=corpus.parent)
    _assert_clean_run(code, screen)
    assert "cycling" in _clean(screen)


@pytest.mark.parametrize(
    "args",
    [
        ["info"],
        ["dedup"],
        ["outliers", "-k", "3"],
        ["runtime", "info"],
        ["train", "--epochs", "2", "--device", "cpu"],
    ],
    ids=lambda args: args[0] if args[0] != "runtime" else "runtime-info",
)
def test_commands_that_draw_run_on_a_terminal(terminal_index: tuple[Path, Path], args: list[str]) -> None:
    corpus, db = terminal_index
    code, screen = run_on_terminal([*args, "--db", str(db)], cwd=corpus.parent)
    _assert_clean_run(code, screen)
    assert _clean(screen).strip()


def test_similar_on_a_terminal(terminal_index: tuple[Path, Path]) -> None:
    corpus, db = terminal_index
    target = next(corpus.glob("cycling/*.txt"))
    code, screen = run_on_terminal(["similar", str(target), "--db", str(db), "-k", "3"], cwd=corpus.parent)
    _assert_clean_run(code, screen)
    assert "│" in _clean(screen)


def _new_docs(folder: Path, prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, text) in enumerate(SMALL_DOCS.items()):
        (folder / f"{prefix}-{i}-{Path(name).name}").write_text(text + f" ({prefix} {i})")


def test_a_log_file_gets_the_plan_and_plain_progress_lines(terminal_index: tuple[Path, Path], tmp_path: Path) -> None:
    """Issue 17: with stderr in a log file, ``index`` printed nothing for 11 minutes."""
    corpus, db = terminal_index
    _new_docs(corpus / "logged", "logged")
    log = tmp_path / "index.log"
    with log.open("wb") as sink:
        done = subprocess.run(
            [*_command(), "index", str(corpus), "--db", str(db), "--device", "cpu"],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env=_env(SEMHASH_PROGRESS_SECONDS="0"),
            timeout=240,
        )
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\x1b[" not in text  # no bars redrawn into a file
    assert f"to embed: {len(SMALL_DOCS)} documents from {len(SMALL_DOCS)} files" in text
    assert f"embedding: {len(SMALL_DOCS)}/{len(SMALL_DOCS)} documents" in text
    assert "docs/s" in text and "done in" in text
    assert f"{len(SMALL_DOCS)} added" in text


def test_quiet_silences_the_progress_but_not_the_summary(terminal_index: tuple[Path, Path]) -> None:
    corpus, db = terminal_index
    _new_docs(corpus / "quiet", "quiet")
    code, screen = run_on_terminal(["index", str(corpus), "--db", str(db), "--device", "cpu", "--quiet"], cwd=corpus)
    _assert_clean_run(code, screen)
    text = _clean(screen)
    assert "to embed" not in text and "embedding" not in text
    assert f"{len(SMALL_DOCS)} added" in text


def test_eval_on_a_terminal(tmp_path: Path) -> None:
    """``eval`` prints its steps and a table: on a terminal with the real model too."""
    import json

    data = tmp_path / "toy.jsonl"
    with data.open("w") as sink:
        for round_ in range(4):
            for name, text in SMALL_DOCS.items():
                label = name.split("/")[0]
                split = "test" if round_ == 0 else "train"
                sink.write(json.dumps({"text": f"{text} (take {round_})", "label": label, "split": split}) + "\n")
    code, screen = run_on_terminal(
        ["eval", str(data), "--bits", "8", "--k", "3", "--cache", str(tmp_path / "c.npz"), "--device", "cpu"],
        cwd=tmp_path,
    )
    _assert_clean_run(code, screen)
    assert "itq" in _clean(screen) and "│" in _clean(screen)
