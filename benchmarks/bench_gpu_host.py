"""Where the torch encoder's time goes on a GPU: the host's tokenising against the model's forward passes.

``tools/gpu_check.py`` measured 747 windows/s at fp32 and 1,432 at fp16 on an H200 (BENCHMARKS.md, GPU), far
under what the chip's arithmetic allows for a 22M-parameter model. This splits one run of
``SentenceTransformer.encode`` over the same windows into its parts, on the stripped 20 Newsgroups posts:

1. cutting the documents into windows (semhash's tokeniser pass with offsets, on the host);
2. tokenising the windows (sentence-transformers' own pass, on the host), batch by batch;
3. the whole ``encode`` (tokenising, forward passes, pooling, copies back);

so ``3 - 2`` is the device's share. Run it twice to see what the tokeniser's threads change (semhash sets
``TOKENIZERS_PARALLELISM=false`` unless the environment says otherwise)::

    python -m benchmarks.bench_gpu_host --model .gpu/model --data .gpu/20ng.jsonl.gz
    TOKENIZERS_PARALLELISM=true python -m benchmarks.bench_gpu_host --model .gpu/model --data .gpu/20ng.jsonl.gz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, read_posts


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--docs", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = parser.parse_args(argv)

    import torch

    from semhash.embed import SentenceTransformerEncoder

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    encoder = SentenceTransformerEncoder(args.model, device=args.device, batch_size=args.batch_size)
    st = encoder._model
    texts = [p.text for p, _ in zip(read_posts(args.data), range(args.docs), strict=False)]
    st.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    sync()

    started = time.perf_counter()
    pieces = [piece for text in texts for piece, _ in encoder.windows(text)]
    cut = time.perf_counter() - started

    started = time.perf_counter()
    for start in range(0, len(pieces), args.batch_size):
        st.tokenize(pieces[start : start + args.batch_size])
    tokenize = time.perf_counter() - started

    sync()
    started = time.perf_counter()
    st.encode(pieces, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)
    sync()
    encode = time.perf_counter() - started

    report = {
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM"),
        "documents": len(texts),
        "windows": len(pieces),
        "cut_windows_s": cut,
        "tokenize_s": tokenize,
        "encode_s": encode,
        "device_share_s": encode - tokenize,
        "encode_windows_per_s": len(pieces) / encode,
        "end_to_end_windows_per_s": len(pieces) / (cut + encode),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
