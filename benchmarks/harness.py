"""The benchmark harness: where data, work files and results live, and what a result records about its run.

Every benchmark takes its paths from here, so none is written into a script:

* ``DATA`` (``SEMHASH_DATA``): the shared, read-only data sets (20 Newsgroups, MRPC, ...); default the
  ``shared/data`` folder beside the checkout (``../shared/data`` from the repository root; from a worktree
  nested deeper, the nearest ancestor that has one).
* ``CACHE`` (``SEMHASH_BENCH_CACHE``): derived work files (stripped posts, embeddings, built sets); default
  ``.cache`` in the repository root (git-ignored).
* ``RESULTS`` (``SEMHASH_BENCH_OUT``): result files; default ``benchmarks/results`` (committed).

:func:`write_result` stamps a result with its run (:func:`run_info`: machine, commit, command line, date), so a
committed number says where it came from. Run a benchmark from the repository root as a module::

    python -m benchmarks.bench_rerank            # -> benchmarks/results/rerank.json
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

#: The repository root (benchmarks/ is one level below it).
ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    """``SEMHASH_DATA``, else the nearest ``shared/data`` beside the checkout or an ancestor of it."""
    if env := os.environ.get("SEMHASH_DATA"):
        return Path(env)
    for parent in ROOT.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return ROOT.parent / "shared" / "data"


#: The shared data sets (read only).
DATA = _data_dir()
#: Derived work files (embeddings, built sets): rebuilt by the dataset builders, never committed.
CACHE = Path(os.environ.get("SEMHASH_BENCH_CACHE") or ROOT / ".cache")
#: Where results go (committed).
RESULTS = Path(os.environ.get("SEMHASH_BENCH_OUT") or ROOT / "benchmarks" / "results")


def result_path(name: str) -> Path:
    """The default result file of a benchmark: ``RESULTS/NAME.json``."""
    return RESULTS / f"{name}.json"


def _run(command: list[str]) -> str:
    """A command's stripped standard output, or ``""`` when it is missing or fails."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=ROOT, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[str]:
    """The NVIDIA GPUs ``nvidia-smi`` lists (name and memory), or ``[]`` without one."""
    if shutil.which("nvidia-smi") is None:
        return []
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"])
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine() -> dict[str, object]:
    """What a timing depends on: CPU model, cores, GPUs, load at the time, OS and Python."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": gpus(),
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def commit() -> str:
    """The checkout's commit (``git rev-parse HEAD``), with ``-dirty`` when tracked files are changed."""
    head = _run(["git", "rev-parse", "HEAD"])
    if not head:
        return "unknown"
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return f"{head}-dirty" if dirty else head


def run_info() -> dict[str, object]:
    """The run a result came from: machine, commit, command line and date (UTC)."""
    return {
        "machine": machine(),
        "commit": commit(),
        "command": " ".join([Path(sys.executable).name, *sys.orig_argv[1:]])
        if hasattr(sys, "orig_argv")
        else " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_result(path: Path | str, result: dict[str, object], *, indent: int = 1) -> Path:
    """Write ``result`` as JSON to ``path`` (a path, or a bare name for ``RESULTS/NAME.json``) with its run.

    Args:
        path: The file to write, or a name without ``/`` or suffix for :func:`result_path`.
        result: The benchmark's figures; a ``"run"`` key (:func:`run_info`) is added.
        indent: JSON indentation.

    Returns:
        The path written.
    """
    if isinstance(path, str) and "/" not in path and not path.endswith(".json"):
        target = result_path(path)
    else:
        target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({**result, "run": run_info()}, indent=indent, default=float) + "\n")
    return target


# Runs a command and prints its exit code, wall time and peak RSS (VmHWM of the child, read before it is
# reaped: ru_maxrss of RUSAGE_CHILDREN would include this wrapper's own interpreter).
_PEAK_RSS_WRAPPER = r"""
import json, subprocess, sys, time
log = open(sys.argv[1], "wb")
out = open(sys.argv[2], "wb") if sys.argv[2] else log
started = time.perf_counter()
child = subprocess.Popen(sys.argv[3:], stdout=out, stderr=log, stdin=subprocess.DEVNULL)
peak = 0
while True:
    try:
        with open(f"/proc/{child.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    except OSError:
        pass
    try:
        code = child.wait(timeout=0.5)
        break
    except subprocess.TimeoutExpired:
        continue
print(json.dumps({"code": code, "seconds": time.perf_counter() - started, "peak_rss_mb": peak / 1024}))
"""


def run_with_peak_rss(
    args: list[str], log: Path, stdout: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, float]:
    """Run ``args`` with stderr (and stdout, unless ``stdout``) to ``log``: its exit code, wall s and peak RSS MB."""
    command = [sys.executable, "-c", _PEAK_RSS_WRAPPER, str(log), str(stdout or ""), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    result: dict[str, float] = json.loads(done.stdout)
    return result
