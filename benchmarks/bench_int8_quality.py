"""P@100 on 20 Newsgroups of codes from int8 (or bf16) embeddings, next to fp32 (issues 9 and 20).

Run from the repository root, after ``benchmarks/datasets/newsgroups.py`` (the fp32 embeddings) — about 10-15 minutes on
the 2-core CPU, most of it embedding the 18,331 posts with the int8 encoder::

    .venv/bin/python -m benchmarks.bench_int8_quality --seeds 0,1,2 --out benchmarks/results/int8.json

The int8 encoder is the one ``semhash index --precision int8`` uses: onnxruntime's dynamic quantisation
(weights per channel) of the exported model, from the per-model cache
(:func:`semhash.runtime.cache.cached_encoder` at ``int8``; ``bench_encode.quantize`` made the same graph before,
embeddings equal); its embeddings are cached in ``.cache/20ng/embeddings-int8.npz``. Both rows use the
``--precision bf16`` scores the bf16 encoder instead (OpenVINO, the fp32 graph in bfloat16; two windows at once,
as ``semhash index`` runs it; cached in ``.cache/20ng/embeddings-bf16.npz``). Both rows use the
same protocol and code as ``benchmarks/bench_hashing.py`` (:func:`semhash.evaluate.evaluate`): the default recipe
at 32 bits, database = train split, queries = test split, P@100 over the Hamming ranking, ties by id. The
fp32 row reads the embeddings of the torch path, which the fp32 ONNX path reproduces to cosine 1.000000.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks.harness import CACHE, write_result
from semhash.config import DEFAULT_MODEL
from semhash.evaluate import FLOAT, OURS, evaluate
from semhash.runtime.cache import cached_encoder
from semhash.runtime.onnx_encoder import OnnxEncoder, default_threads

DATA = CACHE / "20ng" / "20ng-stripped.jsonl"
FP32_CACHE = CACHE / "20ng" / "embeddings.npz"
INT8_CACHE = CACHE / "20ng" / "embeddings-int8.npz"
BF16_CACHE = CACHE / "20ng" / "embeddings-bf16.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--bits", default="32")
    parser.add_argument("--precision", choices=("int8", "bf16"), default="int8")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = {}
    workers = default_threads() if args.precision == "bf16" else 1
    encoder = OnnxEncoder(cached_encoder(DEFAULT_MODEL, args.precision), workers=workers)
    assert encoder.precision == args.precision, "the encoder must load its own graph"
    cache = INT8_CACHE if args.precision == "int8" else BF16_CACHE
    for name, kwargs in (("fp32", {"cache": FP32_CACHE}), (args.precision, {"cache": cache, "encoder": encoder})):
        started = time.perf_counter()
        report = evaluate(
            DATA, bits=args.bits, seeds=args.seeds, baselines=(), with_map=False, progress=print, **kwargs
        )
        summary = {(r.method, r.bits): r for r in report.summary("p@100")}
        rows[name] = {
            "ours": {b: [summary[(OURS, int(b))].mean, summary[(OURS, int(b))].std] for b in args.bits.split(",")},
            "float": summary[(FLOAT, None)].mean,
            "seconds": time.perf_counter() - started,
        }
        print(name, json.dumps(rows[name]), flush=True)
    print(f"load average after: {os.getloadavg()}")
    for name, row in rows.items():
        cells = ", ".join(f"{b} bits {m:.4f} ± {s:.4f}" for b, (m, s) in row["ours"].items())
        print(f"| {name} | {cells} | float cosine {row['float']:.4f} | {row['seconds']:.0f} s |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_result(args.out, rows, indent=2)


if __name__ == "__main__":
    main()
