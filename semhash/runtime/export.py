"""Export the query-side pipeline once (with torch), so that queries run without it.

:func:`export_encoder` writes the sentence-transformers model (transformer, pooling, normalisation) as
``encoder.onnx`` with dynamic batch and sequence axes, and its tokenizer as ``tokenizer.json``;
:func:`export_hasher` writes the hashing model as ``hasher.npz`` (plain arrays). The encoder changes only
with the embedding model, the hasher at each retraining, so each has its own function;
:func:`export_runtime` does both. :func:`optimise_encoder` saves onnxruntime's optimised graph beside the
portable one (what a cold query loads; redone by :func:`export_hasher` and the encoder cache when the
installed onnxruntime is not the one that wrote it). Every export builds a new folder beside the
destination and swaps it in with renames (files it keeps are hard-linked, not copied), so a reader sees
the old folder or the new one, and a failed export leaves the old one as it was.

The encoder may be given by name (loaded here) or as an encoder already built: an adapted encoder
(:func:`semhash.adapted.load_adapted_encoder`, the base model with the index's stored top layers) is
exported through the same code, under its recorded name, with its window length and the number of windows
it embeds (the manifest's ``windows``); the caller loads it, as only the caller knows where its verified
weights come from.

:func:`quantise_folder` makes the int8 sibling of an fp32 encoder folder (``--precision int8``): onnxruntime's
dynamic quantisation of ``encoder.onnx`` (int8 weights per output channel, activations quantised per batch at
run time), the same tokenizer, and its own optimised graph; no torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from semhash.errors import RuntimeUnavailableError
from semhash.runtime.manifest import (
    ENCODER_FILE,
    ENCODER_FILES,
    HASHER_FILE,
    KNOWN_FILES,
    MANIFEST,
    OPTIMIZED_FILE,
    OPTIMIZED_FILES,
    OPTIMIZED_WEIGHTS,
    TOKENIZER_FILE,
    Manifest,
    file_entry,
    manifest_format,
    read_manifest,
)
from semhash.runtime.numpy_hasher import HASHER_FORMAT
from semhash.runtime.stamp import write_stamps

if TYPE_CHECKING:
    from semhash.embed import SentenceTransformerEncoder
    from semhash.model import HashingAutoencoder

#: ONNX operator set of the exported graph (onnxruntime >= 1.12 runs it).
OPSET = 17


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("semhash-engine", "torch", "sentence-transformers", "transformers", "onnxruntime", "tokenizers"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _replace_folder(dest: Path, build: Callable[[Path], dict[str, Any]]) -> Path:
    """Run ``build(tmp)`` in a fresh folder beside ``dest``, write its manifest, then swap it in for ``dest``."""
    dest = Path(dest)
    if dest.is_symlink():  # renaming it would move the link, and the caller may have read through it
        raise RuntimeUnavailableError(f"{dest} is a symbolic link: export the runtime into a real folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide the runtime from every other user of the index
    old = None
    try:
        manifest = build(tmp)
        precision = str(manifest.get("precision") or "fp32")
        manifest["format"] = manifest_format(int(manifest.get("windows") or 0), precision)
        manifest["files"] = {name: file_entry(tmp / name) for name in KNOWN_FILES if (tmp / name).exists()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.rename(dest, old / dest.name)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not dest.exists():  # put the previous folder back
            os.rename(old / dest.name, dest)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    # Every file was just hashed: stamp them, so the first query does not hash them again. Only now, as
    # removing the old folder's links to kept files changed those files' ctime (part of the stamp).
    write_stamps(dest, {name: (entry["sha256"], (dest / name).stat()) for name, entry in manifest["files"].items()})
    return dest


def _keep(current: Manifest, name: str, folder: Path) -> None:
    """Bring the current folder's ``name`` into the new one, refusing it when it no longer matches its manifest."""
    source, target = current.folder / name, folder / name
    try:
        os.link(source, target)  # same file system (a sibling folder): no 90 MB copy
    except OSError:
        shutil.copy2(source, target)
    if file_entry(target) != current.files.get(name):
        raise RuntimeUnavailableError(
            f"the exported runtime at {current.folder} has a damaged {name}: export the whole runtime again"
        )


def _current(dest: Path) -> Manifest | None:
    """The destination's manifest when it is a valid runtime folder, else ``None`` (it is then rebuilt)."""
    try:
        return read_manifest(dest) if (Path(dest) / MANIFEST).exists() else None
    except RuntimeUnavailableError:
        return None


def _write_encoder(model: str | SentenceTransformerEncoder | None, folder: Path) -> dict[str, Any]:
    """Write ``encoder.onnx`` and ``tokenizer.json`` into ``folder``; return the manifest's encoder fields.

    ``model``: a name or path as for ``--model``, or an encoder already built (an adapted one), on the CPU.
    """
    import torch

    from semhash.embed import SentenceTransformerEncoder

    source = model if isinstance(model, SentenceTransformerEncoder) else SentenceTransformerEncoder(model, device="cpu")
    st_model = source._model.eval()

    class Pipeline(torch.nn.Module):
        """The sentence-transformers modules (transformer, pooling, normalise) as one tensor function."""

        def __init__(self) -> None:
            super().__init__()
            self.st = st_model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.st(features)["sentence_embedding"]

    # Traced on a padded batch, so that the graph keeps the attention mask's padding path.
    example = st_model.tokenizer(
        ["an example sentence for the exporter to trace", "short"], padding=True, return_tensors="pt"
    )
    inputs = tuple(
        example[name] if name in example else torch.zeros_like(example["input_ids"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    )
    axes = {name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask", "token_type_ids")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python-level branches of the model code
        torch.onnx.export(
            Pipeline().eval(),
            inputs,
            str(folder / ENCODER_FILE),
            input_names=list(axes),
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: one self-contained file, no onnxscript needed
        )
    backend = st_model.tokenizer.backend_tokenizer  # what sentence-transformers itself tokenises with
    backend.no_padding()
    backend.no_truncation()
    (folder / TOKENIZER_FILE).write_text(backend.to_str(), encoding="utf-8")
    fields = {"embedding_model": source.name, "dim": source.dim, "max_seq_length": source.max_tokens + 2}
    # An adapted encoder embeds only its first windows (its own max_windows); a frozen one caps nothing.
    fields["windows"] = int(source.max_windows)
    return {**fields, "optimized": optimise_encoder(folder)}


def _encoder_fields(current: Manifest) -> dict[str, Any]:
    """The manifest's encoder fields of a folder whose encoder files are kept."""
    fields: dict[str, Any] = {
        "embedding_model": current.embedding_model,
        "dim": current.dim,
        "max_seq_length": current.max_seq_length,
        "windows": current.windows,
    }
    if current.precision != "fp32":  # an fp32 manifest stays as older semhash versions wrote it
        fields["precision"] = current.precision
    return fields


def onnxruntime_version() -> str | None:
    """The installed onnxruntime's version (``None`` without one)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)


def optimise_encoder(folder: Path) -> dict[str, str] | None:
    """Save onnxruntime's optimised ``encoder.opt.onnx`` (weights in ``encoder.opt.weights``) beside ``encoder.onnx``.

    The ``EXTENDED`` level: the transformer fusions (attention, layer norm, GELU), which are the same on
    every CPU; not ``ALL``, whose layout changes are specific to the CPU that runs them. Loaded later with
    every optimisation off, it gives bit-identical embeddings to ``encoder.onnx`` optimised at load time
    (checked by the tests). Any failure leaves no optimised files and returns ``None`` (the portable graph
    still works, only slower to start).

    Returns:
        the manifest's ``optimized`` record (``{"onnxruntime": version}``), or ``None``.
    """
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(folder / OPTIMIZED_FILE)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", OPTIMIZED_WEIGHTS)
        # Every weight tensor goes to the weights file, leaving a small graph to parse at load time.
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(str(folder / ENCODER_FILE), options, providers=["CPUExecutionProvider"])
        if not all((folder / name).is_file() for name in OPTIMIZED_FILES):
            raise OSError("onnxruntime wrote no optimised graph")
        return {"onnxruntime": str(ort.__version__)}
    except Exception:  # an onnxruntime that cannot optimise or save it: the portable graph stays
        for name in OPTIMIZED_FILES:
            with contextlib.suppress(OSError):
                (folder / name).unlink()
        return None


def _keep_optimized(current: Manifest, folder: Path) -> dict[str, str] | None:
    """The current folder's optimised pair when this onnxruntime wrote it, else a new one from ``folder``'s graph."""
    if current.precision == "bf16":  # OpenVINO reads the portable graph: onnxruntime's would be dead weight
        return None
    version = onnxruntime_version()
    if version is not None and current.optimized_for(version):
        for name in OPTIMIZED_FILES:
            _keep(current, name, folder)
        return current.optimized
    return optimise_encoder(folder)


def _hasher_arrays(hasher: HashingAutoencoder) -> dict[str, np.ndarray]:
    """The hashing model's query side as plain arrays (see :class:`semhash.runtime.numpy_hasher.NumpyHasher`)."""
    from torch import nn

    arrays: dict[str, np.ndarray] = {}
    linear = 0
    modules = list(hasher.encoder)
    for position, module in enumerate(modules):
        if isinstance(module, nn.Linear):
            arrays[f"linear{linear}_weight"] = module.weight.detach().cpu().numpy().astype(np.float32)
            arrays[f"linear{linear}_bias"] = module.bias.detach().cpu().numpy().astype(np.float32)
            linear += 1
        elif isinstance(module, nn.GELU) and module.approximate == "none":
            following = [m for m in modules[position + 1 :] if not isinstance(m, nn.Dropout)]
            if not following or not isinstance(following[0], nn.Linear) or linear == 0:
                raise ValueError("the runtime's hasher expects GELU only between two Linear layers")
        elif not isinstance(module, nn.Dropout):  # dropout is the identity at inference
            raise ValueError(f"the runtime cannot export a hashing encoder layer {type(module).__name__}")
    # The decoder too (Linear -> exact GELU -> Linear): indexing's reconstruction errors without torch.
    decoder = list(hasher.decoder)
    linears = [m for m in decoder[0::2] if isinstance(m, nn.Linear)]
    gelu = len(decoder) == 3 and isinstance(decoder[1], nn.GELU) and decoder[1].approximate == "none"
    if not gelu or len(linears) != 2:
        raise ValueError("the runtime's hasher expects a Linear -> GELU -> Linear decoder")
    for index, module in enumerate(linears):
        arrays[f"decoder{index}_weight"] = module.weight.detach().cpu().numpy().astype(np.float32)
        arrays[f"decoder{index}_bias"] = module.bias.detach().cpu().numpy().astype(np.float32)
    meta: dict[str, Any] = {
        "format": HASHER_FORMAT,
        "config": asdict(hasher.config),
        "linear_layers": linear,
        "decoder_layers": 2,
        "lexical": hasher.lexical is not None,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    if hasher.lexical is not None:
        lexical = hasher.lexical
        arrays["lexical_vocabulary"] = np.frombuffer(json.dumps(lexical.vocabulary).encode("utf-8"), dtype=np.uint8)
        stop_words = json.dumps(sorted(lexical.stop_words)).encode("utf-8")
        arrays["lexical_stop_words"] = np.frombuffer(stop_words, dtype=np.uint8)
        arrays["lexical_idf"] = np.asarray(lexical.idf, dtype=np.float32)
        arrays["lexical_components"] = np.asarray(lexical.components, dtype=np.float32)
        arrays["lexical_weight"] = np.array(lexical.weight, dtype=np.float64)
    return arrays


def _write_hasher(hasher: HashingAutoencoder, folder: Path, hasher_id: int | None, hasher_checksum: str | None) -> dict:
    buffer = io.BytesIO()
    # Not compressed: inflating 7 MB of floats was ~0.05 s of every cold query, for 3 MB of disk saved.
    np.savez(buffer, **_hasher_arrays(hasher))  # type: ignore[arg-type]
    (folder / HASHER_FILE).write_bytes(buffer.getvalue())
    return {"id": hasher_id, "checksum": hasher_checksum, "bits": hasher.config.bits}


def export_runtime(
    model_name_or_path: str | SentenceTransformerEncoder | None,
    hasher: HashingAutoencoder | None,
    dest: Path,
    *,
    hasher_id: int | None = None,
    hasher_checksum: str | None = None,
) -> Path:
    """Write the whole runtime folder (encoder, tokenizer, hasher when given, manifest) at ``dest``.

    Args:
        model_name_or_path: the embedding model, as for ``--model`` (``None``: the packaged default), or an
            encoder already built on the CPU (an adapted encoder: exported under its recorded name).
        hasher: the hashing model to export beside it, or ``None`` for an encoder-only folder.
        dest: the folder (replaced as a whole; intended place ``<db>.runtime/``).
        hasher_id: the caller's id of the hashing model (e.g. its row in the ``models`` table).
        hasher_checksum: the caller's checksum of the stored hashing model (e.g. sha256 of its blob).

    Returns:
        ``dest``.
    """

    def build(folder: Path) -> dict[str, Any]:
        fields = _write_encoder(model_name_or_path, folder)
        record = _write_hasher(hasher, folder, hasher_id, hasher_checksum) if hasher is not None else None
        return {**_manifest_base(), **fields, "hasher": record}

    return _replace_folder(dest, build)


def export_encoder(model_name_or_path: str | SentenceTransformerEncoder | None, dest: Path) -> Path:
    """(Re-)export only the encoder and tokenizer, keeping the folder's hasher when it has a valid one."""
    current = _current(Path(dest))

    def build(folder: Path) -> dict[str, Any]:
        fields = _write_encoder(model_name_or_path, folder)
        record = None
        if current is not None and current.hasher is not None and current.dim == fields["dim"]:
            _keep(current, HASHER_FILE, folder)
            record = current.hasher
        return {**_manifest_base(), **fields, "hasher": record}

    return _replace_folder(dest, build)


def export_hasher(
    hasher: HashingAutoencoder,
    dest: Path,
    *,
    hasher_id: int | None = None,
    hasher_checksum: str | None = None,
    source: Path | None = None,
) -> Path:
    """Replace only the hashing model of a runtime folder (its encoder files are hard-linked).

    Args:
        hasher: the hashing model to export.
        dest: the runtime folder (replaced as a whole; intended place ``<db>.runtime/``).
        hasher_id: the caller's id of the hashing model (e.g. its row in the ``models`` table).
        hasher_checksum: the caller's checksum of the stored hashing model (e.g. sha256 of its blob).
        source: the runtime folder whose encoder files to take (default: ``dest`` itself); e.g. the
            per-model encoder cache of :mod:`semhash.runtime.cache`.

    Raises:
        RuntimeUnavailableError: ``source`` holds no valid runtime folder (export the encoder first), or its
            encoder's dimension differs from the hasher's input.
    """
    current = read_manifest(Path(source if source is not None else dest))
    if current.dim != hasher.config.input_dim:
        raise RuntimeUnavailableError(
            f"the exported runtime at {dest} embeds in {current.dim} dims but the hashing model reads "
            f"{hasher.config.input_dim}: export the runtime again with the index's model"
        )

    def build(folder: Path) -> dict[str, Any]:
        for name in ENCODER_FILES:
            _keep(current, name, folder)
        record = _write_hasher(hasher, folder, hasher_id, hasher_checksum)
        fields = {**_encoder_fields(current), "optimized": _keep_optimized(current, folder)}
        return {**_manifest_base(current.versions), **fields, "hasher": record}

    return _replace_folder(dest, build)


def refresh_optimized(dest: Path) -> Manifest:
    """Give a runtime folder an optimised graph for the installed onnxruntime (no torch; about a second).

    Returns the folder's manifest as it is afterwards (unchanged when its optimised graph is current).

    Raises:
        RuntimeUnavailableError: ``dest`` holds no valid runtime folder, or one of its files is damaged.
    """
    current = read_manifest(Path(dest))
    version = onnxruntime_version()
    if version is None or current.optimized_for(version) or current.precision == "bf16":
        return current

    def build(folder: Path) -> dict[str, Any]:
        for name in current.files:
            if name not in OPTIMIZED_FILES:
                _keep(current, name, folder)
        fields = {**_encoder_fields(current), "hasher": current.hasher}
        return {**_manifest_base(current.versions), **fields, "optimized": optimise_encoder(folder)}

    _replace_folder(Path(dest), build)
    return read_manifest(Path(dest))


def quantise_folder(source: Path, dest: Path) -> Path:
    """Write at ``dest`` the int8 encoder folder of the fp32 encoder folder ``source`` (no torch; seconds).

    onnxruntime's dynamic quantisation (``QInt8`` weights, per output channel: the variant measured in
    BENCHMARKS.md "Indexing speed (issue 20)"); the tokenizer is hard-linked. The folder is encoder-only
    (an index's hasher is added by :func:`export_hasher`) and records ``precision: "int8"``.

    Raises:
        RuntimeUnavailableError: ``source`` is not a valid fp32 runtime folder, or onnxruntime (with its
            quantisation tools and ``onnx``) is missing or fails.
    """
    current = read_manifest(Path(source))
    if current.precision != "fp32":
        raise RuntimeUnavailableError(f"the exported runtime at {source} is already {current.precision}")
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise RuntimeUnavailableError(
            f"an int8 encoder needs onnxruntime and onnx ({exc.name} is missing): pip install onnxruntime onnx"
        ) from exc
    from semhash.runtime.manifest import check_file

    portable = check_file(current, ENCODER_FILE)

    def build(folder: Path) -> dict[str, Any]:
        _keep(current, TOKENIZER_FILE, folder)
        try:
            with warnings.catch_warnings(), _quiet_root_logger():
                warnings.simplefilter("ignore")
                quantize_dynamic(portable, folder / ENCODER_FILE, weight_type=QuantType.QInt8, per_channel=True)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeUnavailableError(f"could not quantise the encoder at {source} to int8: {first[:200]}") from exc
        fields = {**_encoder_fields(current), "precision": "int8", "hasher": None}
        return {**_manifest_base(current.versions), **fields, "optimized": optimise_encoder(folder)}

    return _replace_folder(Path(dest), build)


def bf16_folder(source: Path, dest: Path) -> Path:
    """Write at ``dest`` the bf16 encoder folder of the fp32 encoder folder ``source`` (no torch; no new weights).

    The same portable ``encoder.onnx`` and tokenizer (hard-linked), recorded as ``precision: "bf16"``: OpenVINO
    runs that graph in bfloat16 (:class:`semhash.runtime.onnx_encoder.OnnxEncoder`), so the folder is the
    fp32 one under another name, and an index's precision decides which runtime reads it. Encoder-only, as
    :func:`quantise_folder`'s.

    Raises:
        RuntimeUnavailableError: ``source`` is not a valid fp32 runtime folder.
    """
    current = read_manifest(Path(source))
    if current.precision != "fp32":
        raise RuntimeUnavailableError(f"the exported runtime at {source} is already {current.precision}")

    def build(folder: Path) -> dict[str, Any]:
        for name in ENCODER_FILES:
            _keep(current, name, folder)
        fields = {**_encoder_fields(current), "precision": "bf16", "hasher": None}
        return {**_manifest_base(current.versions), **fields, "optimized": None}

    return _replace_folder(Path(dest), build)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Silence the root logger's warning that ``quantize_dynamic`` prints on every call (pre-processing advice)."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _manifest_base(versions: dict[str, str] | None = None) -> dict[str, Any]:
    """The manifest's versions (its format follows from its ``windows``: :func:`_replace_folder`)."""
    return {"versions": {**(versions or {}), **_versions()}}
