"""P@100 on 20 Newsgroups of codes from int8-quantised embeddings, next to fp32 (issue 9's int8 question).

Run from the repository root, after ``scripts/newsgroups.py`` (the fp32 embeddings) — about 10-15 minutes on
the 2-core CPU, most of it embedding the 18,331 posts with the int8 encoder::

    .venv/bin/python scripts/bench_int8_quality.py --seeds 0,1,2 --out bench-out/int8.json

The int8 encoder is onnxruntime's dynamic quantisation (weights per channel) of the exported model
(``bench_encode.quantize``); its embeddings are cached in ``.cache/20ng/embeddings-int8.npz``. Both rows use the
same protocol and code as ``scripts/bench_hashing.py`` (:func:`semhash.evaluate.evaluate`): the default recipe
at 32 bits, database = train split, queries = test split, P@100 over the Hamming ranking, ties by id. The
fp32 row reads the embeddings of the torch path, which the fp32 ONNX path reproduces to cosine 1.000000.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_encode import quantize  # noqa: E402

from semhash.config import DEFAULT_MODEL  # noqa: E402
from semhash.evaluate import FLOAT, OURS, evaluate  # noqa: E402
from semhash.runtime.cache import cached_encoder  # noqa: E402
from semhash.runtime.manifest import ENCODER_FILE  # noqa: E402
from semhash.runtime.onnx_encoder import OnnxEncoder  # noqa: E402

DATA = ROOT / ".cache" / "20ng" / "20ng-stripped.jsonl"
FP32_CACHE = ROOT / ".cache" / "20ng" / "embeddings.npz"
INT8_CACHE = ROOT / ".cache" / "20ng" / "embeddings-int8.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--bits", default="32")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = quantize(cached_encoder(DEFAULT_MODEL).folder, Path(tmp) / "int8.runtime")
        encoder = OnnxEncoder(folder)
        assert encoder.graph == ENCODER_FILE, "the int8 copy must load its quantised graph"
        for name, kwargs in (("fp32", {"cache": FP32_CACHE}), ("int8", {"cache": INT8_CACHE, "encoder": encoder})):
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
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
