"""Encoding speed of the int8 encoder beside fp32, with and without length grouping (issue 20, "int8").

Run from the repository root (20 Newsgroups posts, the shared file of ``benchmarks/datasets/newsgroups.py``)::

    python -m benchmarks.bench_int8_speed --docs 120 --out benchmarks/results/int8-speed.json
    zcat /usr/share/doc/dpkg/changelog.gz > /tmp/dpkg.txt   # full windows: a long file in 6,000-character pieces
    python -m benchmarks.bench_int8_speed --docs 12 --long /tmp/dpkg.txt --out benchmarks/results/int8-speed-long.json

Timed on the same posts in the same run, interleaved chunk by chunk (so a busy machine slows them alike):

- ``st-encode``: ``SentenceTransformer.encode`` of the posts (truncated at 256 tokens: less work than semhash's
  windows), the issue's baseline;
- ``onnx-fp32`` / ``onnx-int8``: :class:`semhash.runtime.OnnxEncoder` on the per-model cached exports at each
  precision (what ``semhash index --precision`` embeds with), every window, pooled; each with 32 windows per
  run sorted by token length (``b32-grouped``, fp32's default), 32 in document order (``b32-ungrouped``), and
  one window per run (``b1``: no padding at all; int8's default, which makes its embeddings batch-independent),
  and one window per run with as many windows at once as there are cores, one intra-op thread each
  (``b1-bulk``: what ``semhash index`` runs since the parallel windows of issue 20);
- ``onnx-bf16-b1`` / ``onnx-bf16-b1-bulk``: the bf16 encoder (the fp32 graph on OpenVINO in bfloat16), one window
  a run, alone and as many at once as there are cores (the default of a new index on a CPU with AMX).

onnxruntime runs with :func:`semhash.runtime.onnx_encoder.default_threads` intra-op threads (the cores this
process may use); torch with its own default. Printed: documents/s, windows/s and the ratio to ``st-encode``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks.bench_encode import sample_posts, timed_interleaved
from benchmarks.harness import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunks", type=int, default=2, help="interleaving rounds")
    parser.add_argument("--long", type=Path, help="instead of posts: --docs pieces of 6,000 characters of this file")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    from semhash.config import DEFAULT_MODEL
    from semhash.embed import load_encoder
    from semhash.runtime import OnnxEncoder
    from semhash.runtime.cache import cached_encoder
    from semhash.runtime.onnx_encoder import default_threads

    if args.long is not None:  # full 254-token windows, where padding costs nothing: a long file cut in pieces
        whole = args.long.read_text(encoding="utf-8", errors="replace")
        texts = [whole[k : k + 6000] for k in range(0, min(len(whole), 6000 * args.docs), 6000)]
    else:
        texts = sample_posts(args.docs, args.seed)
    model = load_encoder(device="cpu")._model  # the sentence-transformers model itself
    folders = {precision: cached_encoder(DEFAULT_MODEL, precision) for precision in ("fp32", "int8")}
    runners: dict[str, Callable[[Sequence[str]], np.ndarray]] = {
        "st-encode": lambda chunk: model.encode(list(chunk), batch_size=32, show_progress_bar=False)
    }
    encoders = {}
    for precision, manifest in folders.items():
        for batch, grouped, label in ((32, True, "b32-grouped"), (32, False, "b32-ungrouped"), (1, True, "b1")):
            name = f"onnx-{precision}-{label}"
            encoders[name] = OnnxEncoder(manifest, batch_size=batch, group_by_length=grouped)
            runners[name] = encoders[name].encode
        bulk = f"onnx-{precision}-b1-bulk"
        encoders[bulk] = OnnxEncoder(manifest, workers=default_threads())
        runners[bulk] = encoders[bulk].encode
    half = cached_encoder(DEFAULT_MODEL, "bf16")
    encoders["onnx-bf16-b1"] = OnnxEncoder(half)
    encoders["onnx-bf16-b1-bulk"] = OnnxEncoder(half, workers=default_threads())
    runners["onnx-bf16-b1"] = encoders["onnx-bf16-b1"].encode
    runners["onnx-bf16-b1-bulk"] = encoders["onnx-bf16-b1-bulk"].encode
    windows = sum(len(encoders["onnx-fp32-b1"].windows(t)) for t in texts)
    load_before = os.getloadavg()
    print(
        f"{len(texts)} posts, {windows} windows; onnxruntime threads {default_threads()}, torch threads "
        f"{torch.get_num_threads()}; load {load_before}",
        flush=True,
    )
    for run in runners.values():  # warm-up: first-call costs are not throughput
        run(texts[:4])
    seconds, outputs = timed_interleaved(runners, texts, args.chunks)
    base = seconds["st-encode"]
    rows = {}
    for name, secs in seconds.items():
        rows[name] = {"seconds": secs, "docs_per_s": len(texts) / secs, "windows_per_s": windows / secs,
                      "x_st_encode": base / secs}  # fmt: skip
        print(f"| {name} | {len(texts) / secs:.2f} | {windows / secs:.2f} | {base / secs:.2f} |", flush=True)
    batched = (outputs["onnx-int8-b32-grouped"] * outputs["onnx-int8-b1"]).sum(axis=1)
    cos = (outputs["onnx-fp32-b32-grouped"] * outputs["onnx-int8-b1"]).sum(axis=1)
    print(f"int8 batched by 32 vs one window a run: cosine min {batched.min():.4f}, mean {batched.mean():.4f}")
    print(f"int8 vs fp32 cosine: min {cos.min():.4f}, mean {cos.mean():.4f}")
    cos_bf16 = (outputs["onnx-fp32-b32-grouped"] * outputs["onnx-bf16-b1-bulk"]).sum(axis=1)
    print(f"bf16 vs fp32 cosine: min {cos_bf16.min():.6f}, mean {cos_bf16.mean():.6f}")
    print(f"load average before {load_before}, after {os.getloadavg()}")
    if args.out:
        result = {
            "docs": len(texts),
            "windows": windows,
            "threads": default_threads(),
            "rows": rows,
            "load": [load_before, os.getloadavg()],
            "cosine_int8_fp32": [float(cos.min()), float(cos.mean())],
            "cosine_int8_b32_b1": [float(batched.min()), float(batched.mean())],
            "cosine_bf16_fp32": [float(cos_bf16.min()), float(cos_bf16.mean())],
        }
        write_result(args.out, result, indent=2)
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
