"""Issue 20: the exported encoder vs torch on full-length (254-token) windows, interleaved in one process.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_full_windows --file /usr/share/doc/dpkg/changelog.gz

``benchmarks/bench_encode.py`` times 20NG posts, mostly one short window each; a folder of long files is
embedded as full windows. The first ``--windows`` windows of ``--file`` (gzip read when it ends in ``.gz``)
are embedded ``--rounds`` times by each encoder in turn (the torch path's window call, the export's).
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=Path("/usr/share/doc/dpkg/changelog.gz"))
    parser.add_argument("--windows", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from semhash.config import DEFAULT_MODEL
    from semhash.embed import SentenceTransformerEncoder
    from semhash.runtime import OnnxEncoder
    from semhash.runtime.cache import cached_encoder

    opener = gzip.open if args.file.suffix == ".gz" else open
    with opener(args.file, "rt", encoding="utf-8", errors="replace") as handle:
        text = handle.read(args.windows * 2000)
    torch_encoder = SentenceTransformerEncoder(device="cpu")
    onnx_encoder = OnnxEncoder(cached_encoder(DEFAULT_MODEL))
    windows = [piece for piece, _ in torch_encoder.windows(text)][: args.windows]
    print(f"{len(windows)} windows of {args.file}; load {os.getloadavg()}")
    torch_encoder._encode_windows(windows[:4])  # warm-up
    onnx_encoder.embed_windows(windows[:4])
    torch_s = onnx_s = 0.0
    for _ in range(args.rounds):
        started = time.perf_counter()
        a = torch_encoder._encode_windows(windows)
        torch_s += time.perf_counter() - started
        started = time.perf_counter()
        b = onnx_encoder.embed_windows(windows)
        onnx_s += time.perf_counter() - started
    n = args.rounds * len(windows)
    print(f"torch {n / torch_s:.1f} windows/s, export {n / onnx_s:.1f} windows/s, export/torch {torch_s / onnx_s:.2f}x;"
          f" cosine min {(a * b).sum(axis=1).min():.6f}; load {os.getloadavg()}")  # fmt: skip


if __name__ == "__main__":
    main()
