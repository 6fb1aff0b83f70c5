"""A tried lever for issue 20: int8 weights with OpenVINO's dynamic activation quantisation, against bf16.

OpenVINO's CPU plugin can run a graph whose MatMul weights are int8 (``DequantizeLinear`` on the weights) with
its activations quantised on the fly in groups (``DYNAMIC_QUANTIZATION_GROUP_SIZE``), which would use AMX's
int8 tiles. This script writes such a graph from the fp32 export (symmetric int8, one scale per output
column) and times one window at a time on one thread, on the first window (256 tokens at most) of
``--docs`` 20 Newsgroups test posts (``bench_index_20ng.py``'s seeded draw), each configuration after a warm-up,
with the cosine of its embeddings to fp32's::

    .venv/bin/python -m benchmarks.bench_weight_int8 --out benchmarks/results/weight_int8.json
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, read_posts
from benchmarks.harness import write_result


def int8_weight_graph(source: Path, target: Path) -> int:
    """``source`` with each 2-D MatMul weight stored as int8 plus a per-column scale; returns how many."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    dequantize = []
    for node in graph.node:
        weight_name = node.input[1] if node.op_type == "MatMul" else ""
        if weight_name not in initializers or uses[weight_name] != 1:
            continue
        weight = numpy_helper.to_array(initializers[weight_name])
        if weight.ndim != 2:
            continue
        scale = np.maximum(np.abs(weight).max(axis=0) / 127.0, 1e-12).astype(np.float32)
        quantised = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
        graph.initializer.remove(initializers[weight_name])
        graph.initializer.extend(
            [numpy_helper.from_array(quantised, weight_name + "_q"), numpy_helper.from_array(scale, weight_name + "_s")]
        )
        inputs = [weight_name + "_q", weight_name + "_s"]
        dequantize.append(helper.make_node("DequantizeLinear", inputs, [weight_name + "_dq"], axis=1))
        node.input[1] = weight_name + "_dq"
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(dequantize + nodes)
    onnx.save(model, str(target))
    return len(dequantize)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--docs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from tokenizers import Tokenizer

    from semhash.config import DEFAULT_MODEL
    from semhash.runtime.cache import cached_encoder
    from semhash.runtime.openvino_runner import LENGTH_STEP, import_openvino, padded

    test = [p for p in read_posts(args.source) if p.split == "test"]
    random.Random(args.seed).shuffle(test)
    folder = cached_encoder(DEFAULT_MODEL, "fp32").folder
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(256)
    rows = [e.ids for e in tokenizer.encode_batch([p.text for p in test[: args.docs]])]
    work = Path(tempfile.mkdtemp(prefix="weight-int8-"))
    quantised = int8_weight_graph(folder / "encoder.onnx", work / "encoder_w8.onnx")

    ov = import_openvino()
    core = ov.Core()

    def embed(compiled: ov.CompiledModel) -> np.ndarray:
        """Each row alone through ``compiled`` (an OpenVINO compiled model): unit vectors."""
        request = compiled.create_infer_request()
        out = []
        for row in rows:
            ids = np.array([row], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
            request.infer({name: padded(value, LENGTH_STEP) for name, value in feed.items()})
            out.append(np.array(request.get_output_tensor(0).data[0], dtype=np.float32))
        vectors = np.array(out)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    configurations = {
        "fp32": (folder / "encoder.onnx", {"INFERENCE_PRECISION_HINT": "f32"}),
        "bf16 (the default on AMX)": (folder / "encoder.onnx", {"INFERENCE_PRECISION_HINT": "bf16"}),
        "int8 weights, bf16": (work / "encoder_w8.onnx", {"INFERENCE_PRECISION_HINT": "bf16"}),
        "int8 weights, f32": (work / "encoder_w8.onnx", {"INFERENCE_PRECISION_HINT": "f32"}),
        "int8 weights, f32, dynamic int8 activations (groups of 32)": (
            work / "encoder_w8.onnx",
            {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"},
        ),
    }
    results: dict[str, dict[str, float]] = {}
    reference: np.ndarray | None = None
    for name, (graph, config) in configurations.items():
        compiled = core.compile_model(
            str(graph), "CPU", {**config, "INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": "LATENCY"}
        )
        embed(compiled)  # warm-up: every padded length's kernels
        started = time.perf_counter()
        vectors = embed(compiled)
        seconds = time.perf_counter() - started
        reference = vectors if reference is None else reference
        cosines = np.sum(vectors * reference, axis=1)
        results[name] = {
            "windows_per_s": len(rows) / seconds,
            "min_cosine_to_fp32": float(cosines.min()),
            "mean_cosine_to_fp32": float(cosines.mean()),
        }
        print(f"{name}: {len(rows) / seconds:.1f} windows/s, cosine to fp32 min {cosines.min():.5f}", flush=True)
    if args.out:
        write_result(args.out, {"windows": len(rows), "quantised_matmuls": quantised, "results": results})


if __name__ == "__main__":
    main()
