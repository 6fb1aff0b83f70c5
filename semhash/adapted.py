"""An adapted encoder: the base sentence-transformers model with its top transformer layers fine-tuned.

``semhash train --adapt`` (:mod:`semhash.adapt`) fine-tunes the top ``layers`` transformer layers of the
index's embedding model on the indexed corpus. Only those layers' weights are stored, in the index (the
``encoders`` table, see :mod:`semhash.store`), with the base model's name and the window length they were
trained for; the rest of the network is the base model, loaded from its usual place.

The index then records the embedding model as ``<base>#adapted-<sha256 of the blob, 12 hex>``
(:func:`adapted_name`): every place that checks which encoder made the stored embeddings (ingest, the
exported runtime's manifest) sees a different model from the frozen one, so a query can never embed with
the frozen encoder and search adapted codes.

Queries embed with it on either runtime: :func:`semhash.runtime.folder.refresh_runtime` exports it (base
model with the adapted layers swapped in, its window length, its windows) into the index's
``<db>.runtime/``, as it exports a frozen model, and the Ray engine's workers build it from the blob the
driver ships them.

The blob is torch's zip format holding tensors and a JSON string only, read by the one safe reader of
stored blobs (:mod:`semhash.blobs`, ``weights_only=True``); it comes from the database, so it is untrusted:
anything wrong with it is one :class:`~semhash.errors.CorruptModelError`. Which encoder an index embeds
with (this one, the frozen model, or an export) is chosen in :mod:`semhash.encoders`. torch is imported
only when an adapted encoder is loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from semhash.blobs import read_blob
from semhash.errors import CorruptModelError, ModelLoadError

if TYPE_CHECKING:
    import torch

    from semhash.embed import SentenceTransformerEncoder

#: What joins the base model's name and the adapted weights' checksum in the recorded model name.
MARK = "#adapted-"
#: Bounds of a stored adapted encoder, checked before anything is built from it.
MAX_LAYERS = 48
MAX_SEQ_LENGTH = 8192

_UNREADABLE = (
    "the adapted encoder stored in the index is unreadable ({why}): run `semhash train --adapt` again "
    "(it adapts the base model afresh), or rebuild the index into a new --db"
)


@dataclass(frozen=True)
class AdaptedSpec:
    """What, besides the weights, describes an adapted encoder (saved in its blob)."""

    #: the base model's recorded name (``sentence-transformers/all-MiniLM-L6-v2``, or a local path).
    base_model: str
    #: how many of the top transformer layers the blob replaces.
    layers: int
    #: tokens per window (special tokens included) the adapted layers were trained for and embed with.
    max_seq_length: int
    #: windows embedded per document (0 = all; 1 = the first window only, the rest of a long document
    #: reaching its code through the lexical vector).
    windows: int = 1


def is_adapted(name: str | None) -> bool:
    """Whether a recorded embedding-model name is an adapted encoder's."""
    return bool(name) and MARK in str(name)


def adapted_name(base_model: str, blob: bytes) -> str:
    """The recorded name of an adapted encoder: its base model and the checksum of its blob."""
    return f"{base_model}{MARK}{hashlib.sha256(blob).hexdigest()[:12]}"


def base_of(name: str) -> str:
    """The base model of a recorded name (the name itself when it is not an adapted one)."""
    return name.split(MARK, 1)[0]


def encoder_to_bytes(spec: AdaptedSpec, layer_states: list[dict[str, torch.Tensor]]) -> bytes:
    """Serialise the adapted layers' weights (top layers, bottom first) and their :class:`AdaptedSpec`."""
    import torch

    if len(layer_states) != spec.layers:
        raise ValueError(f"{len(layer_states)} layer states for {spec.layers} layers")
    buffer = io.BytesIO()
    payload = {
        "spec": json.dumps(asdict(spec)),
        "layers": [{k: v.detach().cpu().contiguous() for k, v in state.items()} for state in layer_states],
    }
    torch.save(payload, buffer)
    return buffer.getvalue()


def spec_from_bytes(blob: bytes | None) -> tuple[AdaptedSpec, list[dict[str, Any]]]:
    """Inverse of :func:`encoder_to_bytes`, through the one safe reader of stored blobs (:mod:`semhash.blobs`).

    Raises:
        CorruptModelError: the blob is missing, damaged, or not an adapted encoder this version wrote.
    """
    return read_blob(blob, "spec", _UNREADABLE, "not a semhash adapted encoder", _spec_from_payload)


def _spec_from_payload(payload: dict, spec_json: str) -> tuple[AdaptedSpec, list[dict[str, Any]]]:
    """The spec and layer states of a loaded payload, every field checked before anything is built."""
    fields = json.loads(spec_json)
    if not isinstance(fields, dict) or set(fields) != {"base_model", "layers", "max_seq_length", "windows"}:
        raise CorruptModelError(_UNREADABLE.format(why="unknown configuration"))
    spec = AdaptedSpec(**fields)
    if not isinstance(spec.base_model, str) or not spec.base_model or MARK in spec.base_model:
        raise CorruptModelError(_UNREADABLE.format(why="no base model"))
    if not isinstance(spec.windows, int) or not 0 <= spec.windows <= 1 << 20:
        raise CorruptModelError(_UNREADABLE.format(why=f"windows {spec.windows!r} out of range"))
    for name, value, limit in (
        ("layers", spec.layers, MAX_LAYERS),
        ("max_seq_length", spec.max_seq_length, MAX_SEQ_LENGTH),
    ):
        if not isinstance(value, int) or not 1 <= value <= limit:
            raise CorruptModelError(_UNREADABLE.format(why=f"{name} {value!r} out of range"))
    layers = payload.get("layers")
    if not isinstance(layers, list) or len(layers) != spec.layers or not all(isinstance(s, dict) for s in layers):
        raise CorruptModelError(_UNREADABLE.format(why="layer weights missing"))
    return spec, layers


def transformer_layers(encoder: SentenceTransformerEncoder) -> torch.nn.ModuleList:
    """The transformer layers (a ``ModuleList``) of a sentence-transformers encoder built on a BERT-like model."""
    auto_model = getattr(encoder._model[0], "auto_model", None)
    layers = getattr(getattr(auto_model, "encoder", None), "layer", None)
    if layers is None:
        raise ModelLoadError(
            f"model {encoder.name!r} is not a BERT-like transformer: `semhash train --adapt` cannot adapt it"
        )
    return layers


def set_window(encoder: SentenceTransformerEncoder, max_seq_length: int) -> None:
    """Make ``encoder`` cut and embed windows of ``max_seq_length`` tokens (special tokens included)."""
    encoder._model.max_seq_length = max_seq_length
    encoder.max_tokens = max(8, max_seq_length - 2)


def check_blob(name: str, blob: bytes | None) -> bytes:
    """``blob`` when it is the one ``name`` records (its checksum), for whoever ships it elsewhere (Ray workers).

    Raises:
        CorruptModelError: no blob, or its checksum is not the one ``name`` records.
    """
    if blob is None or adapted_name(base_of(name), blob) != name:
        raise CorruptModelError(_UNREADABLE.format(why="its checksum does not match the index's embedding model"))
    return blob


def load_adapted_encoder(
    name: str, blob: bytes | None, device: str, max_windows: int = 0
) -> SentenceTransformerEncoder:
    """The adapted encoder recorded as ``name``, from its stored blob, on a resolved ``device``.

    The blob is checked against ``name`` here, wherever it came from (the store, or a Ray driver that
    shipped it to a worker): nothing but the weights the index records is ever loaded.

    Raises:
        CorruptModelError: the blob is damaged, or its checksum is not the one ``name`` records.
        ModelLoadError: the base model cannot be loaded.
    """
    from semhash.embed import SentenceTransformerEncoder

    spec, states = spec_from_bytes(check_blob(name, blob))
    if spec.base_model != base_of(name):
        raise CorruptModelError(_UNREADABLE.format(why="its base model is not the index's"))
    # The windows the stored embeddings were made with bound the caller's own limit.
    windows = spec.windows if not max_windows else min(max_windows, spec.windows or max_windows)
    encoder = SentenceTransformerEncoder(spec.base_model, device=device, max_windows=windows)
    layers = transformer_layers(encoder)
    if spec.layers > len(layers):
        raise CorruptModelError(_UNREADABLE.format(why=f"{spec.layers} layers for a {len(layers)}-layer model"))
    try:
        for layer, state in zip(layers[len(layers) - spec.layers :], states, strict=True):
            layer.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CorruptModelError(_UNREADABLE.format(why="layer weights do not fit the base model")) from exc
    set_window(encoder, spec.max_seq_length)
    encoder.name = name
    encoder._model.eval()
    return encoder
