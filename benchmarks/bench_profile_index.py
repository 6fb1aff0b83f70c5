"""Issue 20: where the time of a first ``semhash index`` of a real folder goes, phase by phase.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_profile_index --files 300

Copies a seeded sample of ``--files`` readable files (``.md .txt .rst .html .htm``) of ``--source``
(default ``/usr/share/doc``) into a temporary folder, then indexes it into a fresh database, each
configuration in a fresh interpreter under cProfile (the export cache warmed first):

- ``before``: what a first index did before issue 20: torch at fp32 (``SEMHASH_INDEX_EXPORT=0``,
  ``--precision fp32``), every window of every document (``--max-windows 0``);
- ``fp32 export, --max-windows K`` (``--cap K``; 0: skipped): the exported fp32 encoder, one window per run,
  K spread windows;
- ``after``: today's defaults (bf16 on a CPU with AMX, else int8; 64 spread windows), as ``semhash index DIR``
  runs them.

Phases are read from the profile (cumulative seconds of the functions named, inclusive, so nested ones are
subtracted): ``read`` (files opened, read and hashed, scan and batches: ``_file_documents`` less ``extract``),
``extract`` (text out of HTML and the like), ``tokenise`` (the Rust tokenizer's calls: windows cut, and
the model's input ids), ``embed`` (the transformer's forward passes), ``load`` (the encoder loaded:
imports, weights, export), ``train``, ``codes``, ``caches`` (faiss, rerank caches, the runtime folder),
``other`` (the rest of the wall).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, write_result

READ_SUFFIXES = (".md", ".txt", ".rst", ".html", ".htm")

CHILD = """
import cProfile, json, sys, time
t0 = time.perf_counter()
profile = cProfile.Profile()
profile.enable()
from semhash.ingest import IndexOptions, index_paths
cap = None if sys.argv[4] == "default" else int(sys.argv[4])
precision = None if sys.argv[5] == "default" else sys.argv[5]
report = index_paths(sys.argv[1], [sys.argv[2]], IndexOptions(device="cpu", max_windows=cap, precision=precision))
profile.disable()
profile.dump_stats(sys.argv[3])
print(json.dumps({"embedded": report.embedded, "windows": report.windows, "wall": time.perf_counter() - t0,
                  "warnings": report.warnings}))
"""

#: phase -> (file suffix, function name) whose cumulative time it is; subtracted: the phases nested inside.
PHASES: dict[str, list[tuple[str, str]]] = {
    "extract": [("extract/__init__.py", "extract"), ("extract/__init__.py", "extract_text")],
    "read": [("corpus.py", "_file_documents")],
    # The Rust tokenizer's calls (sentence-transformers' fast tokenizer makes them too); none nests in another.
    "tokenise": [
        ("~", "<method 'encode_batch' of 'tokenizers.Tokenizer' objects>"),
        ("~", "<method 'encode' of 'tokenizers.Tokenizer' objects>"),
    ],
    "embed": [
        # The exported encoder runs windows on worker threads, which cProfile does not see: its embedding is
        # the main thread's time in embed_windows (waiting on them), less the tokeniser calls made there.
        ("runtime/onnx_encoder.py", "embed_windows"),
        ("sentence_transformers/SentenceTransformer.py", "forward"),  # sentence-transformers < 5
        ("sentence_transformers/base/model.py", "forward"),  # sentence-transformers 5
    ],
    "load": [
        ("encoders.py", "index_encoder"),
    ],
    "train": [("ingest/hashing.py", "retrain")],
    "codes": [("ingest/hashing.py", "_encode_uncoded")],
    "caches": [
        ("runtime/folder.py", "refresh_runtime"),
        ("sync.py", "load_index"),
        ("sync.py", "build_index"),
        ("sync.py", "warm_query_caches"),
    ],
}


def phase_seconds(stats_file: Path, wall: float) -> dict[str, float]:
    stats: dict[Any, Any] = vars(pstats.Stats(str(stats_file)))["stats"]  # an attribute typeshed leaves out
    found: dict[str, float] = dict.fromkeys(PHASES, 0.0)
    for (filename, _line, name), (_cc, _nc, _tt, cumulative, _callers) in stats.items():
        for phase, keys in PHASES.items():
            if any(filename.endswith(suffix) and name == fn for suffix, fn in keys):
                found[phase] += cumulative
    # extract runs inside _file_documents: `read` is the rest of it.
    found["read"] = max(0.0, found["read"] - found["extract"])
    # embed_windows re-tokenises its windows (counted in tokenise): not embedding.
    for (filename, _line, name), (_cc, _nc, _tt, _cumulative, callers) in stats.items():
        if any(filename.endswith(suffix) and name == fn for suffix, fn in PHASES["tokenise"]):
            for (caller_file, _caller_line, caller), timing in callers.items():
                if caller_file.endswith("runtime/onnx_encoder.py") and caller == "embed_windows":
                    found["embed"] -= timing[3]
    found["other"] = max(0.0, wall - sum(found.values()))
    return found


def sample_folder(source: Path, files: int, seed: int, dest: Path) -> tuple[int, int]:
    candidates = sorted(
        p for p in source.rglob("*") if p.suffix.lower() in READ_SUFFIXES and p.is_file() and not p.is_symlink()
    )
    chosen = random.Random(seed).sample(candidates, min(files, len(candidates)))
    size = 0
    for path in chosen:
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        size += path.stat().st_size
    return len(chosen), size


@dataclass(frozen=True)
class Config:
    """One profiled index run: its column label, whether a first index may embed with the export, its options."""

    label: str
    export: bool
    cap: str  # "default" or a number (0: every window)
    precision: str  # "default", "fp32", "int8" or "bf16"


def run(folder: Path, db: Path, cache: Path, config: Config, prof: Path) -> dict[str, Any]:
    env = {**os.environ, "SEMHASH_CACHE": str(cache), "SEMHASH_INDEX_EXPORT": "1" if config.export else "0",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    env.pop("SEMHASH_PRECISION", None)
    args = [str(db), str(folder), str(prof), config.cap, config.precision]
    out = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["phases"] = phase_seconds(prof, result["wall"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/usr/share/doc"))
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cap", type=int, default=0, help="also profile the fp32 export at `--max-windows CAP`")
    parser.add_argument("--skip-before", action="store_true", help="profile only the new default")
    parser.add_argument("--out", type=Path, default=None, help="also write the table's figures here (JSON)")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        n, size = sample_folder(args.source, args.files, args.seed, folder)
        cache = Path(tmp) / "cache"
        started = time.perf_counter()
        from semhash.config import DEFAULT_MODEL
        from semhash.runtime.cache import cached_encoder

        os.environ["SEMHASH_CACHE"] = str(cache)
        cached_encoder(DEFAULT_MODEL)  # warm: the runs compare indexing, not one export
        exported = time.perf_counter() - started
        cached_encoder(DEFAULT_MODEL, "int8")  # and the int8 quantisation a machine's first index makes once
        cached_encoder(DEFAULT_MODEL, "bf16")  # (and the bf16 folder: links to the fp32 export's files)
        quantised = time.perf_counter() - started - exported
        print(
            f"{n} files, {size / 1e6:.1f} MB; export cache warmed: fp32 export {exported:.0f} s, "
            f"int8 quantisation {quantised:.0f} s (once a machine, not in the runs below)"
        )
        configs = [] if args.skip_before else [Config("before (torch fp32, every window)", False, "0", "fp32")]
        if args.cap:
            configs.append(Config(f"fp32 export, --max-windows {args.cap}", True, str(args.cap), "fp32"))
        from semhash.runtime.precision import default_cpu_precision

        after = f"after (defaults: {default_cpu_precision()}, 64 spread windows)"
        configs.append(Config(after, True, "default", "default"))
        results = []
        for k, config in enumerate(configs):
            result = run(folder, Path(tmp) / f"{k}.db", cache, config, Path(tmp) / f"{k}.prof")
            label = config.label
            results.append((label, result))
            print(f"{label}: {result['embedded']} documents, {result['windows']} windows, {result['wall']:.0f} s"
                  f"{'; warnings ' + str(result['warnings']) if result['warnings'] else ''}")  # fmt: skip
    print(f"load: {os.getloadavg()}\n")
    print("| phase | " + " | ".join(label for label, _ in results) + " |")
    print("|---|" + "---|" * len(results))
    for phase in [*PHASES, "other"]:
        cells = [f"{r['phases'][phase]:.1f} s ({r['phases'][phase] / r['wall']:.0%})" for _, r in results]
        print(f"| {phase} | " + " | ".join(cells) + " |")
    print("| **wall** | " + " | ".join(f"**{r['wall']:.1f} s**" for _, r in results) + " |")
    print("| docs/s | " + " | ".join(f"{r['embedded'] / r['wall']:.2f}" for _, r in results) + " |")
    print("| windows | " + " | ".join(str(r["windows"]) for _, r in results) + " |")
    if args.out:
        write_result(args.out, {"files": n, "bytes": size, "runs": {label: r for label, r in results}})


if __name__ == "__main__":
    main()
