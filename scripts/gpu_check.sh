#!/usr/bin/env bash
# The GPU check (issue 10), on a machine with a CUDA GPU and no network:
#   1. a fresh venv that sees the machine's own torch/CUDA stack (--system-site-packages), with this checkout
#      on its path and any wheels carried in .gpu/wheels installed (prepared by scripts/gpu_prepare.sh);
#   2. the `gpu`-marked tests (CPU/GPU agreement of training and of embedding);
#   3. scripts/gpu_check.py: embedding docs/s, training seconds, P@100 GPU vs CPU -> $OUT/gpu_check.json.
# Finishes within 8 minutes on an H100 (the measurement step is capped at 420 s).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-out/gpu}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
VENV=${GPU_VENV:-/tmp/semhash-gpu-venv}
rm -rf "$VENV"
"$PYTHON" -m venv --system-site-packages "$VENV"
if compgen -G ".gpu/wheels/*.whl" >/dev/null; then
  "$VENV/bin/python" -m pip install -q --no-index --no-deps --no-compile .gpu/wheels/*.whl
fi
# The checkout itself, without touching the machine's packages (no network: no dependency resolution).
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$PWD" > "$site/semhash-checkout.pth"
MODEL=${SEMHASH_GPU_MODEL:-}
if [ -z "$MODEL" ] && [ -d .gpu/model ]; then MODEL=.gpu/model; fi
DATA=${SEMHASH_GPU_DATA:-.gpu/20ng.jsonl.gz}
[ -f "$DATA" ] || DATA=../shared/data/20newsgroups/20ng.jsonl.gz
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt" || true
export SEMHASH_GPU_MODEL="$MODEL"
PYTHONUNBUFFERED=1 "$VENV/bin/python" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT/gpu-tests.log"
PYTHONUNBUFFERED=1 timeout 420 "$VENV/bin/python" scripts/gpu_check.py ${MODEL:+--model "$MODEL"} --data "$DATA" \
  --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu-check.log"
