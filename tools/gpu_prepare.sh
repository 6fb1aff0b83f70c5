#!/usr/bin/env bash
# Run here (with network to PyPI), before the GPU check: puts in .gpu/ (git-ignored) what the GPU machine,
# which reaches no network, lacks: the 20 Newsgroups file and the default model. The model travels with its
# weights cast to fp16 (45 MB instead of 90 MB, under the device tool's 64 MiB per call); they are cast back to
# fp32 when loaded, so the GPU embeds in fp32 with weights rounded to fp16 (the CPU comparison on the GPU
# machine uses the same weights). Then: device run, carry [".gpu"], command `bash tools/gpu_check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu
cp "${SEMHASH_DATA:-../shared/data}/20newsgroups/20ng.jsonl.gz" .gpu/20ng.jsonl.gz
.venv/bin/python - <<'PY'
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from semhash.embed import default_model_path

src, dst = default_model_path(), Path(".gpu/model")
if dst.exists():
    shutil.rmtree(dst)
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors", "*.onnx", "onnx", "openvino"))
tensors = {k: v.half() for k, v in load_file(src / "model.safetensors").items()}
save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
# transformers would otherwise load the model in the checkpoint's dtype (fp16); semhash embeds in fp32.
config = json.loads((dst / "config.json").read_text())
config["torch_dtype"] = config["dtype"] = "float32"
(dst / "config.json").write_text(json.dumps(config, indent=2))
print("model (fp16 weights) ->", dst)
PY
# The GPU machine's image has torch, sentence-transformers, numpy, scipy, scikit-learn, typer, rich, onnx and
# onnxruntime, but not sqlite-utils, which the test suite's shared helpers import (tests/support.py builds
# stores): its pure-Python wheels travel in .gpu/wheels (gpu_check.sh installs them; no dependency resolution
# there, so each one it needs that the image lacks is named here).
rm -rf .gpu/wheels
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: -d .gpu/wheels \
  "sqlite-utils==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("sqlite-utils"))')" \
  sqlite-fts4==1.0.3 click-default-group==1.2.4
ls .gpu/wheels
du -sh .gpu
