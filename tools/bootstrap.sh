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
# The `documents` extra: PDF/Office reading and its tests (tests/test_extract_documents.py).
"${PIP[@]}" install -e ".[dev,ray,documents]"
# The search page's browser test (tests/test_serve.py) drives Debian's chromium through playwright; browser
# downloads (`playwright install`) do not work here. Install it when missing and apt is usable (CI runs as root);
# elsewhere the test skips and says why.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }) \
    || echo "note: could not install chromium with apt; the browser test of semhash serve will be skipped" >&2
fi
# The network-silence test (tests/test_privacy.py) watches native code's connections with strace; without it
# that part is skipped and says why (its Python audit hook and its files check still run).
if ! command -v strace >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q strace >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q strace >/dev/null 2>&1; }) \
    || echo "note: could not install strace with apt; the native part of tests/test_privacy.py will be skipped" >&2
fi
