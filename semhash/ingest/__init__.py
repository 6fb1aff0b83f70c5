"""``semhash index``: read a corpus, embed what changed, train or apply the hashing model, sync faiss.

Incremental by content hash: unchanged documents are skipped, changed ones re-embedded, new ones added,
and documents whose files are gone from the indexed folders are removed. Every batch of embedded
documents is committed in its own transaction before the next one starts, and codes are written only
after embeddings; an interrupted run keeps all it committed and the next run resumes where it stopped
(documents with an embedding but no code are encoded then).

Memory is bounded by a batch, not by the corpus (issue 8). The scan keeps only each document's path,
record, content hash and length; the texts of new or changed documents are read again a batch at a time.
A batch is at most ``batch_docs`` documents and ``batch_chars`` characters; a longer document is embedded
after all the others, alone, a window chunk at a time (:meth:`~semhash.embed.SentenceTransformerEncoder.encode_long`),
and committed on its own, so an interruption during it keeps everything else. Peak memory is about the
model, plus one batch's texts and windows (or one huge document's text, once when read and once when
stored, and ``window_chunk`` of its windows), plus the largest single file while it is read.

The first run trains the hashing model on the corpus's embeddings; later runs encode new documents with
that model, unless ``retrain`` is set (embeddings are stored, so retraining never re-embeds).

Documents leave the index three ways: their files vanish from the folders being indexed (automatic),
``prune`` (every document whose file no longer exists, anywhere in the index: after a folder moved) and
:func:`remove_paths` (everything under given files or folders, whether or not they still exist). Each
bumps the generation and brings the faiss file up to date.

The package, by stage: :mod:`~semhash.ingest.options` (what a run can be told), :mod:`~semhash.ingest.plan`
(what the scan found, what is to be embedded), :mod:`~semhash.ingest.embed_stage` (text -> embeddings,
locally or on Ray, on the encoder :func:`semhash.encoders.index_encoder` chooses),
:mod:`~semhash.ingest.hashing` (train or keep the hashing model; embeddings -> codes through the
:class:`~semhash.codec.Codec`), :mod:`~semhash.ingest.remove`, and :mod:`~semhash.ingest.run` (one run).

Why two passes (embeddings first, codes after) and not one ``Codec.encode`` per batch: one path would change
outputs. (1) The first run, and every ``retrain``, trains the hashing model on *all* stored embeddings: no
code can exist before the last batch is embedded. (2) On a later run the codes could be made per batch,
but the drift warning reads which documents have an embedding and no code *between* the passes
(``store.ids_without_code()``: the documents coded by a model trained without them); coded in the embed
pass, that list would be empty and the warning lost. (3) Codes are written with their reconstruction
errors, which only the torch model gives, and the Ray workers return embeddings only. (4) The resume rule
"an embedding without a code is coded on the next run" needs the second pass anyway. So both passes stay,
and each goes through the one place it belongs: embeddings through :mod:`semhash.encoders`' choice, codes
through the codec.
"""

from semhash.ingest.embed_stage import embed_on_ray, embed_pending
from semhash.ingest.hashing import retrain, retrain_index, train_and_encode
from semhash.ingest.options import (
    DEFAULT_BATCH_CHARS,
    DEFAULT_MAX_TRAIN_DOCS,
    PLAN_LARGEST_FILES,
    IndexOptions,
    PlanCallback,
    Progress,
)
from semhash.ingest.plan import estimated_windows, plan_index
from semhash.ingest.remove import RemoveReport, prune_index, prune_missing, remove_paths
from semhash.ingest.run import index_paths

__all__ = [
    "DEFAULT_BATCH_CHARS",
    "DEFAULT_MAX_TRAIN_DOCS",
    "PLAN_LARGEST_FILES",
    "IndexOptions",
    "PlanCallback",
    "Progress",
    "RemoveReport",
    "embed_on_ray",
    "embed_pending",
    "estimated_windows",
    "index_paths",
    "plan_index",
    "prune_index",
    "prune_missing",
    "remove_paths",
    "retrain",
    "retrain_index",
    "train_and_encode",
]
