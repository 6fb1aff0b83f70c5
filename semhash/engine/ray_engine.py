"""``semhash index --engine ray``: embed new and changed documents on Ray workers, commit them here.

The driver (the ``semhash index`` process) keeps everything but the embedding: the scan, the content
hashes, removals, the SQLite store, training, codes and faiss. What runs on Ray is one Ray Data pipeline:

1. **Manifest.** The driver groups the pending documents' files into read units of whole files
   (:func:`plan_units`: about one embedding batch of one-document files, or one file of many records):
   one dataset row, and one block, per unit; only names travel from the driver, never texts.
2. **Read.** ``map_batches`` with a task UDF (:func:`read_batches`) reads each unit's files once (a
   JSONL or CSV file is parsed once, however many batches it holds) and yields its documents in
   embedding batches of at most ``batch_docs`` documents and ``batch_chars`` characters, as the local
   path batches them.
3. **Embed.** ``map_batches`` with a class-based UDF (:class:`EmbedActor`) on a fixed pool of actors:
   each actor loads the model once, then embeds batch after batch (window-pooled, exactly as
   :meth:`~semhash.embed.SentenceTransformerEncoder.encode`) and returns rows of (path, record, text,
   content hash, mtime, embedding). An adapted index (``semhash train --adapt``) ships its adapted
   encoder's weights with the job (:attr:`RayJob.adapted`, the blob the driver read from the store and
   checked against the recorded name); each actor checks them again against the name before it builds
   the encoder (:func:`semhash.encoders.torch_encoder`), so no worker loads weights the index does
   not record. One GPU per actor when ``ray.cluster_resources()`` reports GPUs (as
   many actors as GPUs, or ``workers`` if fewer), else ``workers`` CPU actors of one CPU (one torch
   thread) each.
4. **Commit.** ``iter_batches`` streams the results back (in whatever order they finish: each row
   carries its path and record) and each batch is upserted in its own transaction, as in the local
   path: an interruption (Ctrl-C, a dead worker, a lost cluster) keeps every committed batch and a rerun
   embeds only what is missing.

Files are read by Ray tasks, so on a multi-node cluster (``--address``) every node must see the corpus
at the same absolute path (a shared file system); with local workers that always holds.

Memory: an actor holds the model and one batch; a read task one unit's file (as the local path holds the
file it reads); Ray Data's streaming backpressure bounds the batches in flight; the driver holds the
manifest (about 100 bytes per pending document) and one result batch. Documents longer than
``batch_chars`` never go to Ray: :mod:`semhash.ingest` embeds them on its local long-document path
(window chunks, bounded memory), so a batch is never larger than ``batch_chars`` characters.

The hashing model (a small MLP, ~milliseconds per thousand documents) is trained and applied in the
driver, as today: shipping it to the actors would save nothing measurable and would split the
"embeddings first, codes after" bookkeeping across processes.

Fault handling: an actor that dies is restarted up to ``SEMHASH_RAY_MAX_RESTARTS`` times (default 2),
its batch retried; beyond that, or when the cluster fails, the run stops with one line
(:class:`~semhash.errors.EngineError`) and everything committed is kept. Test hook:
``SEMHASH_TEST_KILL_AFTER=N`` makes every actor exit abruptly (``os._exit(1)``, like a killed worker) at
its next batch once the driver has committed ``N`` batches (the driver creates a marker file the actors
look for, so the death comes after commits whatever Ray's scheduling; local clusters only); it is read in
the driver and handed to the actors, never set it outside tests.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from semhash.config import ENV_RAY_KILL_AFTER, ENV_RAY_MAX_RESTARTS, env_text
from semhash.corpus import ReadOptions, read_documents
from semhash.embed import WINDOW_DTYPE, WindowEncoder
from semhash.engine import import_ray
from semhash.errors import EngineError, SemhashError
from semhash.store import Store
from semhash.types import SourceDocument

if TYPE_CHECKING:
    from ray.data import Dataset

DEFAULT_MAX_RESTARTS = 2


@dataclass
class RayJob:
    """What the Ray engine needs to know: the model, how to read and batch, and where to run."""

    model: str | None = None
    max_windows: int = 0
    read: ReadOptions | None = None
    batch_docs: int = 64
    batch_chars: int = 200_000
    #: ``ray.init(address=...)``: join this cluster; ``None`` starts Ray locally (unless already running).
    address: str | None = None
    #: actors (CPU, one thread each; on GPUs at most one per GPU); ``None``: every CPU (or GPU) there is.
    workers: int | None = None
    #: the stored weights of the index's adapted encoder when ``model`` names one (a few MB), else ``None``.
    adapted: bytes | None = None


@dataclass
class RayResult:
    """What the Ray engine did."""

    documents: int = 0
    windows: int = 0
    batches: int = 0
    actors: int = 0
    device: str = "cpu"


def plan_units(pending: Mapping[str, Mapping[int, int]], batch_docs: int, batch_chars: int) -> list[dict]:
    """Group ``{path: {record: characters}}`` into read units of whole files, ``{path: [records]}``.

    Files are added to a unit until it holds ``batch_docs`` documents or ``batch_chars`` characters, so
    one-document files make units of about one embedding batch, and a file of many records (JSONL, CSV)
    is a unit of its own however large: it is read and parsed once, by one read task, which cuts it
    into batches (:func:`read_batches`). Files keep the scan's order.
    """
    units: list[dict] = []
    unit: dict[str, list[int]] = {}
    docs = chars = 0
    for path, records in pending.items():
        if unit and (docs + len(records) > batch_docs or chars + sum(records.values()) > batch_chars):
            units.append(unit)
            unit, docs, chars = {}, 0, 0
        unit[path] = [int(r) for r in records]
        docs += len(records)
        chars += sum(records.values())
    if unit:
        units.append(unit)
    return units


def read_batches(batch: dict[str, np.ndarray], read: ReadOptions, batch_docs: int, batch_chars: int) -> Iterator[dict]:
    """Ray Data task UDF: read each unit's files once, yield its documents in embedding batches.

    A batch is at most ``batch_docs`` documents and ``batch_chars`` characters (as the local path
    batches); each is one output row, ``{"docs": JSON [[path, record, text, content hash, mtime], ...]}``.
    """
    rows: list[list] = []
    chars = 0
    for unit in batch["unit"]:
        wanted = {path: set(records) for path, records in json.loads(str(unit)).items()}
        for doc in read_documents(wanted, read):
            if rows and (len(rows) >= batch_docs or chars + len(doc.text) > batch_chars):
                yield {"docs": np.array([json.dumps(rows)], dtype=object)}
                rows, chars = [], 0
            rows.append([doc.path, doc.record, doc.text, doc.content_hash, doc.mtime])
            chars += len(doc.text)
    if rows:
        yield {"docs": np.array([json.dumps(rows)], dtype=object)}


class EmbedActor:
    """Ray Data's class-based UDF: loads the model once per actor, then embeds batch after batch."""

    def __init__(
        self,
        model: str | None,
        device: str,
        max_windows: int,
        threads: int,
        kill_marker: str | None,
        adapted: bytes | None = None,
    ) -> None:
        if device == "cpu":
            import torch

            torch.set_num_threads(max(1, threads))  # one actor per CPU: no thread oversubscription
        from semhash.embed import Encoder
        from semhash.encoders import ReadWeights, torch_encoder

        # The encoder the driver would load (semhash.encoders): an adapted one from the shipped blob, which
        # is checked against the recorded name before anything is built from it.
        self.encoder: Encoder = torch_encoder(model, device, max_windows, ReadWeights(model, adapted))
        self.kill_marker = kill_marker
        self.batches = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embed the documents of ``batch["docs"]`` (see :func:`read_batches`)."""
        if self.kill_marker is not None and os.path.exists(self.kill_marker):
            os._exit(1)  # the test hook: die like a killed worker, without cleanup
        docs = [
            SourceDocument(str(p), int(r), str(t), str(h), float(m))
            for rows in batch["docs"]
            for p, r, t, h, m in json.loads(str(rows))
        ]
        # Similar lengths pad less in the transformer's forward passes (as the local path does).
        docs.sort(key=lambda d: (len(d.text), d.path, d.record))
        windows_before = _windows(self.encoder)
        texts = [d.text for d in docs]
        spans: list[bytes] = []
        window_vectors: list[bytes] = []
        if isinstance(self.encoder, WindowEncoder):  # the window vectors the index stores for passages
            vectors, embedded = self.encoder.encode_windows(texts)
            for k in range(len(docs)):
                doc_spans, doc_vectors = embedded.of(k)
                spans.append(np.ascontiguousarray(doc_spans, dtype="<i8").tobytes())
                window_vectors.append(np.ascontiguousarray(doc_vectors, dtype=WINDOW_DTYPE).tobytes())
        else:
            vectors = self.encoder.encode(texts)
        windows = np.zeros(len(docs), dtype=np.int64)
        if len(docs):
            windows[0] = _windows(self.encoder) - windows_before  # the batch's windows, carried by its first row
        self.batches += 1
        return {
            "window_spans": np.array(spans or [b""] * len(docs), dtype=object),
            "window_vectors": np.array(window_vectors or [b""] * len(docs), dtype=object),
            "has_windows": np.full(len(docs), bool(spans)),
            "path": np.array([d.path for d in docs], dtype=object),
            "record": np.array([d.record for d in docs], dtype=np.int64),
            "text": np.array([d.text for d in docs], dtype=object),
            "content_hash": np.array([d.content_hash for d in docs], dtype=object),
            "mtime": np.array([d.mtime for d in docs], dtype=np.float64),
            "embedding": np.asarray(vectors, dtype=np.float32).reshape(len(docs), -1),
            "windows": windows,
        }


def _windows(encoder: object) -> int:
    return int(getattr(getattr(encoder, "stats", None), "windows", 0))


def _windows_of(out: dict[str, np.ndarray], n: int, dim: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Each document's ``(spans, vectors)`` as an actor sent them (``None``: its encoder keeps no windows).

    Raises:
        EngineError: a batch whose window columns do not fit together (a worker running other code).
    """
    if "has_windows" not in out or not n or not bool(out["has_windows"][0]):
        return None
    found = []
    for raw_spans, raw_vectors in zip(out["window_spans"], out["window_vectors"], strict=True):
        spans = np.frombuffer(raw_spans, dtype="<i8")
        vectors = np.frombuffer(raw_vectors, dtype=WINDOW_DTYPE)
        if spans.size % 2 or vectors.size != spans.size // 2 * dim:
            raise EngineError(
                "a Ray worker sent window vectors that do not fit its spans: rerun with one semhash version"
            )
        found.append((spans.reshape(-1, 2), vectors.reshape(-1, dim)))
    return found


def embed_on_ray(
    store: Store,
    pending: Mapping[str, Mapping[int, int]],
    model_name: str,
    job: RayJob,
    progress: Callable[[int], None] | None = None,
) -> RayResult:
    """Embed the ``pending`` documents (``{path: {record: characters}}``) on Ray and commit them to ``store``.

    ``model_name`` is the name recorded in the store (checked against the embeddings' dimension on the
    first batch). ``progress(characters committed)`` after each batch.

    Raises:
        EngineUnavailableError: Ray is not installed.
        EngineError: a worker died beyond its restarts, or the cluster failed (committed batches are kept).
        SemhashError: what an actor raised on purpose (a model that fails to load), as it was raised.
    """
    ray = import_ray()
    result = RayResult()
    units = plan_units(pending, max(1, job.batch_docs), max(1, job.batch_chars))
    if not units:
        return result
    kill_after = _env_int(ENV_RAY_KILL_AFTER)
    kill_marker = (
        None if kill_after is None else os.path.join(tempfile.gettempdir(), f"semhash-ray-kill-{uuid.uuid4().hex}")
    )
    restarts = _env_int(ENV_RAY_MAX_RESTARTS)
    restarts = DEFAULT_MAX_RESTARTS if restarts is None else restarts
    done = 0
    with _session(ray, job.address, job.workers):
        actors, device, per_actor = _placement(ray, job.workers)
        result.actors, result.device = actors, device
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False  # semhash prints its own progress
        context.print_on_execution_start = False
        # Ray Data's own log lines ("execution finished", a dead actor's traceback) are not the user's business:
        # a failure reaches them as one line (EngineError); Ray keeps its full logs under /tmp/ray.
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
        rows = [{"unit": json.dumps(unit)} for unit in units]
        with warnings.catch_warnings():
            # Ray >= 2.60 deprecates passing max_restarts this way, with no named parameter for it yet.
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = _pipeline(ray, rows, actors, device, per_actor, job, kill_marker, restarts)
        try:
            for out in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
                n = len(out["path"])
                if n == 0:
                    continue
                embeddings = np.asarray(out["embedding"], dtype=np.float32).reshape(n, -1)
                if result.batches == 0:
                    store.check_embedding_model(model_name, embeddings.shape[1])
                docs = [
                    SourceDocument(str(p), int(r), str(t), str(h), float(m))
                    for p, r, t, h, m in zip(
                        out["path"], out["record"], out["text"], out["content_hash"], out["mtime"], strict=True
                    )
                ]
                store.upsert_documents(docs, embeddings, _windows_of(out, n, embeddings.shape[1]))
                result.documents += n
                result.windows += int(np.sum(out["windows"]))
                result.batches += 1
                if kill_marker is not None and kill_after is not None and result.batches >= kill_after:
                    Path(kill_marker).touch()  # the test hook: the actors die at their next batch
                done += sum(len(d.text) for d in docs)
                if progress:
                    progress(done)
        except (SemhashError, KeyboardInterrupt):
            raise
        except Exception as exc:  # Ray's own errors (dead actors, lost nodes...) become one line
            raise _engine_error(exc, result) from None
        finally:
            if kill_marker is not None:
                Path(kill_marker).unlink(missing_ok=True)
    return result


def _pipeline(
    ray: ModuleType,
    rows: list[dict[str, str]],
    actors: int,
    device: str,
    per_actor: dict[str, float],
    job: RayJob,
    kill_marker: str | None,
    restarts: int,
) -> Dataset:
    """The lazy Ray Data pipeline: read units (tasks) -> embedding batches -> a pool of embedding actors.

    One block per read unit. Read tasks ask for no CPU of their own (parsing is light beside the model,
    and the actors hold every CPU), at most ``actors`` at a time; each embedding batch is one row, and
    one actor call, so each result is one commit.
    """
    read = job.read or ReadOptions()
    return (
        ray.data.from_items(rows, override_num_blocks=len(rows))
        .map_batches(
            read_batches,
            batch_size=1,
            batch_format="numpy",
            fn_kwargs={"read": read, "batch_docs": max(1, job.batch_docs), "batch_chars": max(1, job.batch_chars)},
            num_cpus=0,
            concurrency=actors,
        )
        .map_batches(
            EmbedActor,
            batch_size=1,
            batch_format="numpy",
            concurrency=actors,
            fn_constructor_kwargs={
                "model": job.model,
                "device": device,
                "max_windows": job.max_windows,
                "threads": 1,
                "kill_marker": kill_marker,
                "adapted": job.adapted,
            },
            max_restarts=restarts,
            max_task_retries=restarts,
            **per_actor,
        )
    )


@contextmanager
def _session(ray: ModuleType, address: str | None, workers: int | None) -> Iterator[None]:
    """Use the running Ray session, or start one (joining ``address``, or local) and shut it down after."""
    if ray.is_initialized():
        yield
        return
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": False}
    # Ray's C++ core logs notices to stderr (e.g. about restartable actors' arguments); they stay in its logs.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    ray_logger.setLevel(logging.ERROR)  # start-up notices (token authentication...) would bury semhash's output
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, **quiet)
    except Exception as exc:  # a wrong address, a cluster that is down, a local start that failed
        where = f"join the Ray cluster at {address}" if address else "start Ray locally"
        raise EngineError(
            f"could not {where}: {_first_line(exc)} (check --address, or drop it to run local workers)"
        ) from None
    finally:
        ray_logger.setLevel(level)
    try:
        yield
    finally:
        ray.shutdown()


def _placement(ray: ModuleType, workers: int | None) -> tuple[int, str, dict[str, float]]:
    """``(actors, device, per-actor resources)`` from what the cluster reports."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus >= 1:
        return min(workers or gpus, gpus), "cuda", {"num_gpus": 1, "num_cpus": 1}
    cpus = max(1, int(resources.get("CPU", 1)))
    return max(1, min(workers or cpus, cpus)), "cpu", {"num_cpus": 1}


def _env_int(name: str) -> int | None:
    value = env_text(name).strip()
    if not value:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        raise EngineError(f"{name} must be a whole number, not {value!r}: fix or unset it") from None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, through Ray's wrappers (``cause``) and Python's chaining."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([getattr(current, "cause", None), current.__cause__, current.__context__])


def _engine_error(exc: Exception, result: RayResult) -> SemhashError:
    """One line for a failed Ray run; an actor's own :class:`SemhashError` is passed on as it was."""
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, SemhashError) and type(cause).__module__.startswith("semhash"):
            return cause
    names = {type(c).__name__ for c in causes}
    if names & {"ActorDiedError", "ActorUnavailableError", "WorkerCrashedError", "OutOfMemoryError"}:
        what = "a Ray worker died (killed, out of memory, or its node was lost)"
    else:
        what = f"Ray failed: {_first_line(exc)}"
    return EngineError(
        f"{what}; the {result.documents} documents embedded before it ({result.batches} batches) are kept: "
        "rerun the same command to resume"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
