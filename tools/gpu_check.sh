#!/usr/bin/env bash
# The GPU check (issue 10), on a machine with a CUDA GPU and no network:
#   1. a fresh venv that sees the machine's own torch/CUDA stack (--system-site-packages), with this checkout
#      on its path and any wheels carried in .gpu/wheels installed (prepared by tools/gpu_prepare.sh);
#   2. the `gpu`-marked tests (CPU/GPU agreement of training and of embedding);
#   3. tools/gpu_check.py: embedding docs/s, training seconds, P@100 GPU vs CPU -> $OUT/gpu_check.json;
#   4. `semhash train --adapt`'s recipe on the GPU (issue 12): the stripped posts embedded on the GPU
#      (benchmarks/datasets/newsgroups.py), the frozen lower layers cached (benchmarks/datasets/adapt_cache.py),
#      then benchmarks/bench_adapt.py with the default recipe (frozen rows beside it) and with a GPU-sized one (every
#      database post, 3 epochs; chosen on the validation slice, never on the test queries) -> $OUT/adapt-*.json.
# Stages: SEMHASH_GPU_STAGES (default "tests check adapt"). Steps 2-3 take ~8 minutes on an H100 (step 3 is
# capped at 420 s) and step 4 ~5 minutes (capped at 480 s): with a 15-minute device budget run
# SEMHASH_GPU_STAGES="tests check" and SEMHASH_GPU_STAGES=adapt as two calls, or only the one still missing.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
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
[ -f "$DATA" ] || DATA=${SEMHASH_DATA:-../shared/data}/20newsgroups/20ng.jsonl.gz
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt" || true
export SEMHASH_GPU_MODEL="$MODEL"
export PYTHONUNBUFFERED=1
STAGES=" ${SEMHASH_GPU_STAGES:-tests check adapt} "
if [[ $STAGES == *" tests "* ]]; then
  "$VENV/bin/python" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT/gpu-tests.log"
fi
if [[ $STAGES == *" check "* ]]; then
  timeout 420 "$VENV/bin/python" -m tools.gpu_check ${MODEL:+--model "$MODEL"} --data "$DATA" \
    --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu-check.log"
fi
if [[ $STAGES == *" adapt "* ]]; then
  # Work files (the embeddings, the cached token states) stay out of $OUT: only the reports come back.
  WORK=${SEMHASH_GPU_WORK:-/tmp/semhash-gpu-adapt}
  mkdir -p "$WORK"
  timeout 480 bash -c '
    set -euo pipefail
    py=$1 work=$2 out=$3 data=$4 model=$5
    "$py" -m benchmarks.datasets.newsgroups --source "$data" --out "$work" --device cuda ${model:+--model "$model"}
    "$py" -m benchmarks.datasets.adapt_cache --data "$work/20ng-stripped.jsonl" --out "$work/lower.npz" --device cuda \
      ${model:+--model "$model"}
    common=(--data "$work/20ng-stripped.jsonl" --embeddings "$work/embeddings.npz" --cache "$work/lower.npz"
            --device cuda --threads 8 --seeds 0 --bits 16,32,64 ${model:+--model "$model"})
    "$py" -m benchmarks.bench_adapt "${common[@]}" --out "$out/adapt-default.json"
    "$py" -m benchmarks.bench_adapt "${common[@]}" --only-adapted --set max_docs=100000 --set epochs=3 \
      --out "$out/adapt-gpu-sized.json"
  ' _ "$VENV/bin/python" "$WORK" "$OUT" "$DATA" "$MODEL" 2>&1 | tee "$OUT/gpu-adapt.log"
fi
