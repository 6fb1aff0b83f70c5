"""Encoding throughput and parity: sentence-transformers vs the torch path vs the exported ONNX runtime.

Run from the repository root (the 20 Newsgroups file is the shared one, see ``benchmarks/datasets/newsgroups.py``)::

    .venv/bin/python -m benchmarks.bench_encode                   # speed: 1,000 posts, every encoder
    .venv/bin/python -m benchmarks.bench_encode --parity          # + codes of a hasher trained on them
    .venv/bin/python -m benchmarks.bench_encode --int8 --cold     # + int8 encoder, + cold-start costs

Encoders timed on the same texts in the same run, interleaved chunk by chunk (so a busy machine slows
them alike):

- ``st-windows``: ``SentenceTransformer.encode`` on the documents' windows (the baseline; no pooling);
- ``torch-path``: :class:`semhash.embed.SentenceTransformerEncoder` (tokenise, window, encode, pool);
- ``onnx-fp32``: :class:`semhash.runtime.OnnxEncoder` on the exported model;
- ``onnx-int8`` (``--int8``): the same after onnxruntime's dynamic int8 quantisation (needs ``onnx``).

Parity is against the torch path: cosine of the document embeddings, and with ``--parity`` the share of
documents whose code (a hasher trained on the torch embeddings and texts) is the same on both paths.
``--cold`` times, in fresh subprocesses, the torch-free query path (imports, checks, session, one query)
and the torch one (imports, model load, one query).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, read_posts

COLD_RUNTIME = """
import time; c0 = time.process_time(); t0 = time.perf_counter()
import numpy, sys
from pathlib import Path
t1 = time.perf_counter()
import onnxruntime, tokenizers
t2 = time.perf_counter()
from semhash.runtime import NumpyHasher, OnnxEncoder, read_manifest
t3 = time.perf_counter()
manifest = read_manifest(Path(sys.argv[1]))
hasher = NumpyHasher.load(manifest)
t4 = time.perf_counter()
encoder = OnnxEncoder(manifest)
t5 = time.perf_counter()
text = ["how do I fix a flat tyre on my bike"]
code = hasher.encode(encoder.encode(text), text)
t6 = time.perf_counter()
print({"import numpy": t1 - t0, "import onnxruntime+tokenizers": t2 - t1, "import semhash.runtime": t3 - t2,
       "manifest+hasher load": t4 - t3, "encoder (sha256 + session)": t5 - t4, "first query": t6 - t5,
       "total": t6 - t0, "total CPU": time.process_time() - c0})
"""
COLD_TORCH = """
import time; c0 = time.process_time(); t0 = time.perf_counter()
from semhash.embed import load_encoder
import sentence_transformers
t1 = time.perf_counter()
encoder = load_encoder(device="cpu")
t2 = time.perf_counter()
encoder.encode(["how do I fix a flat tyre on my bike"])
t3 = time.perf_counter()
print({"import sentence_transformers+torch": t1 - t0, "model load": t2 - t1, "first query": t3 - t2, "total": t3 - t0,
       "total CPU": time.process_time() - c0})
"""


def sample_posts(n: int, seed: int) -> list[str]:
    texts = [post.text for post in read_posts(DEFAULT_SOURCE)]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def quantize(folder: Path, dest: Path) -> Path:
    """A copy of the runtime folder with its encoder dynamically quantised to int8 (weights per channel)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from semhash.runtime.manifest import ENCODER_FILE, MANIFEST, OPTIMIZED_FILES, file_entry
    from semhash.runtime.stamp import STAMP_FILE

    shutil.copytree(folder, dest)
    (dest / ENCODER_FILE).unlink()
    quantize_dynamic(folder / ENCODER_FILE, dest / ENCODER_FILE, weight_type=QuantType.QInt8, per_channel=True)
    manifest = json.loads((dest / MANIFEST).read_text())
    manifest["files"][ENCODER_FILE] = file_entry(dest / ENCODER_FILE)
    # The copied optimised graph is the fp32 one: without this the "int8" encoder would load it instead.
    for name in OPTIMIZED_FILES:
        manifest["files"].pop(name, None)
        (dest / name).unlink(missing_ok=True)
    manifest["optimized"] = None
    (dest / STAMP_FILE).unlink(missing_ok=True)
    (dest / MANIFEST).write_text(json.dumps(manifest))
    return dest


def timed_interleaved(
    runners: dict[str, Callable[[Sequence[str]], np.ndarray]], texts: list[str], chunks: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Seconds per runner over all texts, and its outputs, running chunk by chunk in turn."""
    seconds = dict.fromkeys(runners, 0.0)
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in runners}
    size = -(-len(texts) // chunks)
    for start in range(0, len(texts), size):
        chunk = texts[start : start + size]
        for name, run in runners.items():
            started = time.perf_counter()
            outputs[name].append(run(chunk))
            seconds[name] += time.perf_counter() - started
    return seconds, {name: np.concatenate(out) for name, out in outputs.items()}


def cosine_summary(a: np.ndarray, b: np.ndarray) -> str:
    cos = (a * b).sum(axis=1)
    return f"cosine min {cos.min():.6f}, p1 {np.percentile(cos, 1):.6f}, mean {cos.mean():.6f}"


def cold(folder: Path) -> None:
    for name, script, argv in (("runtime", COLD_RUNTIME, [str(folder)]), ("torch", COLD_TORCH, [])):
        runs = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True)
            runs.append(eval(out.stdout.strip().splitlines()[-1]))  # our own subprocess's dict literal
        best = min(runs, key=lambda r: r["total"])
        print(f"cold {name} (best of 2, s): " + ", ".join(f"{k} {v:.3f}" for k, v in best.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=4, help="interleaving rounds")
    parser.add_argument("--runtime", type=Path, help="an exported runtime folder to reuse (default: export now)")
    parser.add_argument("--parity", action="store_true", help="also train a hasher and compare codes")
    parser.add_argument("--int8", action="store_true", help="also time a dynamically quantised encoder")
    parser.add_argument("--cold", action="store_true", help="also time cold starts in subprocesses")
    args = parser.parse_args()

    import torch

    from semhash.embed import SentenceTransformerEncoder
    from semhash.runtime import NumpyHasher, OnnxEncoder
    from semhash.runtime.export import export_runtime

    texts = sample_posts(args.docs, args.seed)
    torch_encoder = SentenceTransformerEncoder(device="cpu")
    windows = [piece for text in texts for piece, _ in torch_encoder.windows(text)]
    print(f"{len(texts)} posts, {len(windows)} windows; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.runtime
        if folder is None:
            started = time.perf_counter()
            folder = export_runtime(None, None, Path(tmp) / "bench.runtime")
            print(f"export: {time.perf_counter() - started:.1f} s")
        onnx_encoder = OnnxEncoder(folder)
        runners: dict[str, Callable[[Sequence[str]], np.ndarray]] = {
            "st-windows": lambda _chunk: np.zeros((0, 0)),  # replaced below: it encodes windows, not documents
            "torch-path": torch_encoder.encode,
            "onnx-fp32": onnx_encoder.encode,
        }
        if args.int8:
            runners["onnx-int8"] = OnnxEncoder(quantize(folder, Path(tmp) / "int8.runtime")).encode
        model = torch_encoder._model
        per_doc = [[piece for piece, _ in torch_encoder.windows(t)] for t in texts]
        doc_index = {id(t): i for i, t in enumerate(texts)}

        def st_windows(chunk: Sequence[str]) -> np.ndarray:
            pieces = [p for t in chunk for p in per_doc[doc_index[id(t)]]]
            model.encode(pieces, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
            return np.zeros((len(chunk), 0))

        runners["st-windows"] = st_windows
        for run in runners.values():  # warm-up: first-call costs are not throughput
            run(texts[:4])
        seconds, outputs = timed_interleaved(runners, texts, args.chunks)
        base = seconds["st-windows"]
        for name, secs in seconds.items():
            rate = f"{len(texts) / secs:7.1f} docs/s {len(windows) / secs:7.1f} windows/s"
            line = f"{name:11s} {rate}  x{base / secs:.2f} vs st-windows"
            if name.startswith("onnx"):
                line += "  " + cosine_summary(outputs[name], outputs["torch-path"])
            print(line)

        if args.parity:
            from semhash.model import encode_codes
            from semhash.runtime.export import export_hasher
            from semhash.train import train_hasher

            reference = outputs["torch-path"]
            hasher, _ = train_hasher(reference, 32, texts=texts)
            export_hasher(hasher, folder)
            numpy_hasher = NumpyHasher.load(folder)
            torch_codes = encode_codes(hasher, reference, texts=texts)
            same_input = (numpy_hasher.encode(reference, texts) == torch_codes).all(axis=1).mean()
            distinct = len({bytes(code) for code in torch_codes})
            print(f"codes, numpy hasher on torch embeddings: {same_input:.4f} equal ({distinct} distinct codes)")
            for name in [n for n in outputs if n.startswith("onnx")]:
                equal = (numpy_hasher.encode(outputs[name], texts) == torch_codes).all(axis=1).mean()
                bits = np.unpackbits(numpy_hasher.encode(outputs[name], texts) ^ torch_codes, axis=1).sum(axis=1)
                print(f"codes, {name} path vs torch path: {equal:.4f} equal, mean differing bits {bits.mean():.4f}")
        if args.cold:
            if not (Path(folder) / "hasher.npz").exists():
                from semhash.model import HashConfig, HashingAutoencoder
                from semhash.runtime.export import export_hasher

                export_hasher(HashingAutoencoder(HashConfig(input_dim=onnx_encoder.dim)), folder)
            cold(Path(folder))


if __name__ == "__main__":
    main()
