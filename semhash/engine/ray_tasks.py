"""Ray tasks for one function over many payloads, results streamed back in order (``semhash dedup --engine ray``).

The driver builds each payload only when it submits it, puts it in Ray's object store, and keeps at most
``window`` tasks submitted but not yet handed back: :meth:`RayTasks.map` waits (``ray.wait``) for whichever
task finishes next, keeps its result until the ones before it are handed back, and yields results in the
order of the payloads, so the caller sees the same sequence as a plain loop would give. Driver memory is
``window`` payloads and results, whatever the number of tasks; a payload the object store holds is freed
once its task is done and nothing refers to it.

A task whose worker dies (killed, out of memory, its node lost) is retried by Ray up to ``retries`` times;
a task that raises is not retried (the same input would fail again): a :class:`~semhash.errors.SemhashError`
it raised reaches the caller as it was, any other failure as one :class:`~semhash.errors.EngineError` line.

Test hook: ``SEMHASH_TEST_KILL_AFTER=N`` makes the session's task number ``N`` (from 0) kill its own worker
process (``os._exit(1)``) on its first try; it leaves a marker file first, so the retry, and every later task,
runs (local clusters only).
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from semhash.config import ENV_RAY_KILL_AFTER, ENV_RAY_MAX_RESTARTS
from semhash.engine import import_ray

# One session policy (quiet logs, local start or --address) and one reading of Ray's errors for both engines.
from semhash.engine.ray_engine import DEFAULT_MAX_RESTARTS, _causes, _env_int, _first_line, _session
from semhash.errors import EngineError, SemhashError

P = TypeVar("P")
S = TypeVar("S")
R = TypeVar("R")

#: Tasks submitted and not yet handed back, per CPU of the cluster (2: the next task is waiting when one ends).
WINDOW_PER_CPU = 2


@dataclass
class TaskCounts:
    """What a :class:`RayTasks` session ran."""

    tasks: int = 0  # handed back
    submitted: int = 0
    cpus: int = 0


class RayTasks:
    """A Ray session's task runner: :meth:`map` a function over payloads, in order, ``window`` tasks at a time."""

    def __init__(self, ray: ModuleType, window: int, retries: int, kill_task: int | None) -> None:
        self.ray = ray
        self.window = max(1, window)
        self.retries = retries
        self.kill_task = kill_task
        self.kill_marker = os.path.join(tempfile.gettempdir(), f"semhash-ray-task-{uuid.uuid4().hex}")
        self.counts = TaskCounts()
        # map() may run in two threads at once (the cells stage assigns the next tree while this one's cells
        # run), so the session's counts and task numbers are taken under a lock: a number is never skipped.
        self._lock = threading.Lock()

    def _take_number(self) -> int:
        """The next task number of the session (from 0), counted as submitted."""
        with self._lock:
            number = self.counts.submitted
            self.counts.submitted += 1
            return number

    def _count_handed(self) -> None:
        with self._lock:
            self.counts.tasks += 1

    def map(self, fn: Callable[[P, S], R], payloads: Iterable[P], shared: S) -> Iterator[R]:
        """``fn(payload, shared)`` for each payload on a Ray task; the results in the payloads' order.

        ``shared`` goes to the object store once and every task reads it from there (a node fetches it once).

        Raises:
            SemhashError: what ``fn`` raised on purpose, as it was raised.
            EngineError: a worker died beyond its retries, or the cluster failed.
        """
        ray = self.ray
        remote = ray.remote(num_cpus=1, max_retries=self.retries, retry_exceptions=False)(_run_task)
        shared_ref = ray.put(shared)
        pending: dict[object, int] = {}  # ObjectRef -> payload number
        finished: dict[int, R] = {}
        todo = iter(payloads)
        submitted = handed = 0
        more = True
        try:
            while True:
                while more and len(pending) + len(finished) < self.window:
                    payload = next(todo, _END)
                    if payload is _END:
                        more = False
                        break
                    kill = self.kill_marker if self._take_number() == self.kill_task else None
                    pending[remote.remote(fn, ray.put(payload), shared_ref, kill)] = submitted
                    submitted += 1
                if handed in finished:
                    self._count_handed()
                    yield finished.pop(handed)
                    handed += 1
                    continue
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    finished[pending.pop(ref)] = ray.get(ref)
        except (SemhashError, KeyboardInterrupt, GeneratorExit):
            raise
        except Exception as exc:  # Ray's own errors (dead workers, lost nodes...) become one line
            raise _task_error(exc) from None
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)


_END = object()


def _run_task(fn: Callable[[P, S], R], payload: P, shared: S, kill_marker: str | None) -> R:
    """The body of every task: ``fn(payload, shared)`` with one BLAS thread (a task holds one CPU)."""
    from threadpoolctl import threadpool_limits

    if kill_marker is not None and not os.path.exists(kill_marker):
        Path(kill_marker).touch()  # the test hook: die once, like a killed worker; the retry finds the marker
        os._exit(1)
    with threadpool_limits(limits=1):
        return fn(payload, shared)


@contextmanager
def ray_tasks(address: str | None = None, workers: int | None = None) -> Iterator[RayTasks]:
    """A :class:`RayTasks` on the running Ray session, or on one started here (joining ``address``, or local).

    ``workers``: the CPUs of a local start; with ``address``, the tasks run at once (default: the cluster's CPUs).

    Raises:
        EngineUnavailableError: Ray is not installed.
        EngineError: the cluster could not be joined or started.
    """
    ray = import_ray()
    retries = _env_int(ENV_RAY_MAX_RESTARTS)
    kill_task = _env_int(ENV_RAY_KILL_AFTER)
    with _session(ray, address, workers):
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        slots = min(workers, cpus) if workers else cpus
        tasks = RayTasks(ray, WINDOW_PER_CPU * slots, DEFAULT_MAX_RESTARTS if retries is None else retries, kill_task)
        tasks.counts.cpus = slots
        try:
            yield tasks
        finally:
            Path(tasks.kill_marker).unlink(missing_ok=True)


def _task_error(exc: Exception) -> SemhashError:
    """One line for a failed task; a task's own :class:`SemhashError` is passed on as it was."""
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, SemhashError) and type(cause).__module__.startswith("semhash"):
            return cause
    names = {type(c).__name__ for c in causes}
    if names & {"WorkerCrashedError", "OutOfMemoryError", "NodeDiedError", "ObjectLostError"}:
        return EngineError(
            f"a Ray worker died beyond its retries (killed, out of memory, or its node was lost): rerun, or raise "
            f"{ENV_RAY_MAX_RESTARTS}"
        )
    return EngineError(f"Ray failed: {_first_line(exc)}")
