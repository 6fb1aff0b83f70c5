#!/usr/bin/env bash
# The GPU check (issue 10), on a machine with a CUDA GPU and no network:
#   1. the machine's own python3 and torch/CUDA stack, with this checkout and any wheels carried in .gpu/wheels
#      (prepared by tools/gpu_prepare.sh) put on PYTHONPATH from a --target folder. Not a venv: the image's
#      python3 is itself a venv's, and `venv --system-site-packages` would see the base interpreter's packages,
#      not that venv's torch;
#   2. the `gpu`-marked tests (CPU/GPU agreement of training and of embedding);
#   3. tools/gpu_check.py: embedding docs/s, training seconds, P@100 GPU vs CPU -> $OUT/gpu_check.json;
#   4. `semhash train --adapt`'s recipe on the GPU (issue 12): the stripped posts embedded on the GPU
#      (benchmarks/datasets/newsgroups.py), the frozen lower layers cached (benchmarks/datasets/adapt_cache.py),
#      then benchmarks/bench_adapt.py with the default recipe (frozen rows beside it) and with a GPU-sized one (every
#      database post, 3 epochs; chosen on the validation slice, never on the test queries) -> $OUT/adapt-*.json.
# Stages: SEMHASH_GPU_STAGES (default "tests check adapt"); caps SEMHASH_GPU_CHECK_CAP (420 s) and
# SEMHASH_GPU_ADAPT_CAP (480 s); code lengths of the adapt stage SEMHASH_GPU_ADAPT_BITS (16,32,64). Measured on an
# H200 (BENCHMARKS.md, GPU): tests ~25 s; the check ~2 min before its CPU seeds (which took longer than that on the
# machine's 16-core host); the adapt stage ~4 min at one code length, more at three. A 15-minute device budget
# (the machine's start included) fits one call at one code length with the caps set, e.g.
#   SEMHASH_GPU_CHECK_CAP=200 SEMHASH_GPU_ADAPT_CAP=300 SEMHASH_GPU_ADAPT_BITS=32 bash tools/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
SITE=${GPU_SITE:-/tmp/semhash-gpu-site}
rm -rf "$SITE"
mkdir -p "$SITE"
if compgen -G ".gpu/wheels/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .gpu/wheels/*.whl
fi
# The checkout first, then the carried wheels, then the machine's packages (no network: nothing resolved).
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
MODEL=${SEMHASH_GPU_MODEL:-}
if [ -z "$MODEL" ] && [ -d .gpu/model ]; then MODEL=.gpu/model; fi
DATA=${SEMHASH_GPU_DATA:-.gpu/20ng.jsonl.gz}
[ -f "$DATA" ] || DATA=${SEMHASH_DATA:-../shared/data}/20newsgroups/20ng.jsonl.gz
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt" || true
export SEMHASH_GPU_MODEL="$MODEL"
export PYTHONUNBUFFERED=1
# A stage that fails (or runs past its cap) is reported at the end; the later stages still run.
failed=""
STAGES=" ${SEMHASH_GPU_STAGES:-tests check adapt} "
if [[ $STAGES == *" tests "* ]]; then
  "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT/gpu-tests.log" || failed+=" tests"
fi
if [[ $STAGES == *" check "* ]]; then
  timeout "${SEMHASH_GPU_CHECK_CAP:-420}" "$PYTHON" -m tools.gpu_check ${MODEL:+--model "$MODEL"} --data "$DATA" \
    --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu-check.log" || failed+=" check"
fi
if [[ $STAGES == *" adapt "* ]]; then
  # Work files (the embeddings, the cached token states) stay out of $OUT: only the reports come back.
  WORK=${SEMHASH_GPU_WORK:-/tmp/semhash-gpu-adapt}
  mkdir -p "$WORK"
  timeout "${SEMHASH_GPU_ADAPT_CAP:-480}" bash -c '
    set -euo pipefail
    py=$1 work=$2 out=$3 data=$4 model=$5 bits=$6
    "$py" -m benchmarks.datasets.newsgroups --source "$data" --out "$work" --device cuda ${model:+--model "$model"}
    "$py" -m benchmarks.datasets.adapt_cache --data "$work/20ng-stripped.jsonl" --out "$work/lower.npz" --device cuda \
      ${model:+--model "$model"}
    common=(--data "$work/20ng-stripped.jsonl" --embeddings "$work/embeddings.npz" --cache "$work/lower.npz"
            --device cuda --threads 8 --seeds 0 --bits "$bits" ${model:+--model "$model"})
    "$py" -m benchmarks.bench_adapt "${common[@]}" --out "$out/adapt-default.json"
    "$py" -m benchmarks.bench_adapt "${common[@]}" --only-adapted --set max_docs=100000 --set epochs=3 \
      --out "$out/adapt-gpu-sized.json"
  ' _ "$PYTHON" "$WORK" "$OUT" "$DATA" "$MODEL" "${SEMHASH_GPU_ADAPT_BITS:-16,32,64}" 2>&1 | tee "$OUT/gpu-adapt.log" || failed+=" adapt"
fi
if [ -n "$failed" ]; then
  echo "gpu_check.sh: failed:$failed" >&2
  exit 1
fi
echo "gpu_check.sh: every stage passed"
