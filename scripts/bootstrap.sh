#!/usr/bin/env bash
# One-step set-up on a fresh machine: a virtualenv in .venv with the project and its dev tools.
# torch is pinned first when absent: on these machines `torch==2.13.0` is a CPU build from local disk,
# while an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${PIP[@]}" install "torch==2.13.0"
fi
# The distribution is "semhash-engine": never `pip install semhash` (that name is another project on PyPI).
# The `ray` extra too: the Ray engine's tests (tests/test_ray.py) run in `make test`; without Ray they are skipped.
"${PIP[@]}" install -e ".[dev,ray]"
