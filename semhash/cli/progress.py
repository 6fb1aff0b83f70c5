"""How a long job (``index``, ``train``) tells a person what it is doing, on stderr.

Two audiences, one stream of events (``progress(phase, done, total)`` and ``plan(IndexPlan)`` from
:mod:`semhash.ingest`):

- **a terminal**: the plan as a few lines, then rich progress bars redrawn in place;
- **anything else** (a log file, ``nohup``, CI): the same plan, then plain lines at most every
  ``interval`` seconds (:data:`semhash.config.DEFAULT_PROGRESS_SECONDS`, ``SEMHASH_PROGRESS_SECONDS``), and
  one when a phase ends. A job that prints nothing for minutes looks dead; one that redraws bars in a log
  file fills it with escape codes.

Both say, once the first batches are embedded, how long embedding is likely to take, and point at
``--max-windows`` when a few long files hold most of the work. ``--quiet`` turns all of it off.
The time left is read from characters, not documents: embedding costs about the same per character,
and a folder's documents differ in length by orders of magnitude; in an index that caps each document's
windows (``--max-windows``, 64 by default) it is read from windows, since a capped document's characters
beyond its windows cost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from semhash.cli.render import display_path
from semhash.config import DEFAULT_PROGRESS_SECONDS, ENV_PROGRESS_SECONDS, env_text
from semhash.types import IndexPlan

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, Task, TaskID

LABELS = {
    "embed": "embedding",
    "adapt-cache": "adapting: frozen layers (documents)",
    "adapt": "adapting the encoder (steps)",
    "train": "training (epochs)",
    "encode": "encoding (documents)",
}
#: Phases that only add detail to "embed" (see :data:`semhash.ingest.Progress`).
_DETAIL_PHASES = ("documents", "windows")
#: Embedding must have run this long before its time left is estimated (the first batch includes warm-up).
ESTIMATE_AFTER_SECONDS = 3.0
#: Long files worth a ``--max-windows`` hint: they hold at least this share of the windows...
HINT_SHARE = 0.3
#: ...and embedding is expected to take at least this many seconds more.
HINT_SECONDS = 120.0
#: The plan names its largest files when the first of them needs at least this many windows.
LONG_FILE_WINDOWS = 10
#: The cap the hint suggests (64 windows: about 16,000 tokens of each long document).
HINT_MAX_WINDOWS = 64


def progress_interval() -> float:
    """Seconds between two plain progress lines: ``SEMHASH_PROGRESS_SECONDS`` or the default."""
    raw = env_text(ENV_PROGRESS_SECONDS)
    try:
        value = float(raw) if raw else DEFAULT_PROGRESS_SECONDS
    except ValueError:
        return DEFAULT_PROGRESS_SECONDS
    return value if value >= 0 and value == value and value != float("inf") else DEFAULT_PROGRESS_SECONDS


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``: a duration a person reads at a glance."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if minutes < 10 and rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def describe_plan(plan: IndexPlan) -> list[str]:
    """The lines that say what an ``index`` run is about to embed."""
    lines = [
        f"to embed: {plan.documents:,} documents from {plan.files:,} files, {plan.characters:,} characters, "
        f"about {plan.windows:,} model windows"
        + (f" (at most {plan.max_windows} per document)" if plan.max_windows else "")
    ]
    if plan.files > 1 and plan.largest and plan.largest[0].windows >= LONG_FILE_WINDOWS:
        largest = ", ".join(f"{display_path(f.path)} (~{f.windows:,} windows)" for f in plan.largest)
        lines.append(f"largest: {largest}: {plan.largest_share:.0%} of the windows")
    return lines


@dataclass
class _Embedding:
    """What is known of the embedding phase so far."""

    started: float | None = None
    characters: int = 0
    characters_total: int = 0
    documents: int = 0
    documents_total: int = 0
    windows: int = 0
    windows_total: int = 0
    estimated: bool = False

    def windows_expected(self, plan: IndexPlan | None) -> int:
        """The planned windows, or (no cap, a fair share done) the ratio measured so far applied to all."""
        uncapped = plan is None or not plan.max_windows
        if uncapped and self.characters >= 0.02 * self.characters_total and self.windows >= 20:
            return max(self.windows, round(self.windows / self.characters * self.characters_total))
        return self.windows_total

    def seconds_left(self, now: float, plan: IndexPlan | None = None) -> float | None:
        """Embedding's time left: from windows when the index caps them (``plan.max_windows``), else characters.

        With a cap, a long document costs its capped windows, not its characters (a 1 MB changelog is 64
        windows, like a 60 KB page): on a documentation folder at the default cap of 64, a reading from
        characters said 4 min 44 s where embedding took 2 min 34 s, the windows' reading 2 min 23 s.
        """
        if self.started is None:
            return None
        elapsed = now - self.started
        if plan is not None and plan.max_windows and self.windows:
            expected = self.windows_expected(plan)
            if self.windows < expected:
                return elapsed / self.windows * (expected - self.windows)
        if not self.characters or self.characters >= self.characters_total:
            return None
        return elapsed / self.characters * (self.characters_total - self.characters)


class ProgressView:
    """Turns ingest's events into what a person reads on stderr (see the module docstring).

    Use :func:`progress_view`; :meth:`plan` and :meth:`update` are the callbacks ingest is given.
    """

    def __init__(
        self, console: Console, live: bool, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """A view on ``console``.

        Args:
            console: where it prints (stderr's console).
            live: rich bars redrawn in place (a terminal), else plain lines.
            interval: seconds between two plain lines of one phase.
            clock: the time source (a fake one in tests).
        """
        self.console = console
        self.live = live
        self.interval = interval
        self.clock = clock
        self._plan: IndexPlan | None = None
        self._embedding = _Embedding()
        self._last_line = float("-inf")
        self._last_phase = ""
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def say(self, line: str) -> None:
        """One line of text (above the bars on a terminal)."""
        console = self._bar.console if self._bar is not None else self.console
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    def plan(self, plan: IndexPlan) -> None:
        """Say what the run is about to embed."""
        self._plan = plan
        for line in describe_plan(plan):
            self.say(line)

    def update(self, phase: str, done: int, total: int) -> None:
        """One progress event of ``phase``: ``done`` of ``total``."""
        now = self.clock()
        state = self._embedding
        if phase == "documents":
            state.documents, state.documents_total = done, total
            return
        if phase == "windows":
            state.windows, state.windows_total = done, total
            return
        if phase == "embed":
            if state.started is None:
                state.started = now
            state.characters, state.characters_total = done, total
            self._maybe_estimate(now)
        if self.live:
            self._draw(phase, done, total)
        elif done >= total or phase != self._last_phase or now - self._last_line >= self.interval:
            # A phase's first event, its last, and otherwise one line per interval.
            self._last_line, self._last_phase = now, phase
            self.say(self._line(phase, done, total, now))

    def _maybe_estimate(self, now: float) -> None:
        state = self._embedding
        if state.estimated or state.started is None or now - state.started < ESTIMATE_AFTER_SECONDS:
            return
        left = state.seconds_left(now, self._plan)
        if left is None:
            return
        state.estimated = True
        elapsed = now - state.started
        rate = f"{state.windows / elapsed:.1f} windows/s, " if state.windows else ""
        self.say(f"estimate: embedding takes about {duration(left)} more ({rate}{duration(elapsed)} so far)")
        plan = self._plan
        if plan is not None and not plan.max_windows and left >= HINT_SECONDS and plan.largest_share >= HINT_SHARE:
            self.say(
                f"hint: {len(plan.largest)} files hold {plan.largest_share:.0%} of the windows; "
                f"--max-windows {HINT_MAX_WINDOWS} embeds at most {HINT_MAX_WINDOWS} windows of each document"
            )

    def _embed_detail(self) -> str:
        state = self._embedding
        parts = []
        if state.documents_total:
            parts.append(f"{state.documents:,}/{state.documents_total:,} documents")
        if state.windows_total:
            parts.append(f"{state.windows:,}/~{state.windows_expected(self._plan):,} windows")
        return ", ".join(parts)

    def _line(self, phase: str, done: int, total: int, now: float) -> str:
        label = LABELS.get(phase, phase)
        if phase != "embed":
            return f"{label}: {done:,}/{total:,}"
        state = self._embedding
        detail = self._embed_detail() or f"{done:,}/{total:,} characters"
        elapsed = now - (state.started or now)
        parts = [detail, f"{done / total:.0%} of the text" if total else ""]
        if elapsed > 0 and state.documents:
            parts.append(f"{state.documents / elapsed:.1f} docs/s")
        left = state.seconds_left(now, self._plan)
        if done >= total:
            parts.append(f"done in {duration(elapsed)}")
        elif left is not None and elapsed >= ESTIMATE_AFTER_SECONDS:
            parts.append(f"about {duration(left)} left")
        return f"{label}: " + ", ".join(p for p in parts if p)

    def _draw(self, phase: str, done: int, total: int) -> None:
        if self._bar is None:
            return
        detail = self._embed_detail() if phase == "embed" else f"{done:,}/{total:,}"
        state = self._embedding
        if phase == "embed" and self._plan is not None and self._plan.max_windows and state.windows_total:
            # Capped: the bar follows windows, as the time left does (characters past a cap cost nothing).
            expected = max(state.windows_expected(self._plan), state.windows)
            done, total = (expected if done >= total else state.windows), expected
        # Embedding's time left is this view's own (characters or windows over the whole run so far, as the plain
        # lines and the estimate say); rich's own reads a rolling window, which swings with each file's length.
        left = state.seconds_left(self.clock(), self._plan) if phase == "embed" else None
        eta = "" if phase != "embed" else (f"about {duration(left)} left" if left is not None else "")
        if phase not in self._tasks:
            self._tasks[phase] = self._bar.add_task(LABELS.get(phase, phase), total=total, detail=detail, eta=eta)
        self._bar.update(self._tasks[phase], completed=done, total=total, detail=detail, eta=eta)

    @contextmanager
    def bars(self) -> Iterator[None]:
        """Draw rich progress bars while the block runs (a terminal only)."""
        if not self.live:
            yield
            return
        from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn
        from rich.progress import TimeRemainingColumn as RichTimeRemaining
        from rich.text import Text

        class TimeLeft(ProgressColumn):
            """The view's own estimate where it has one (embedding), else rich's."""

            def __init__(self) -> None:
                super().__init__()
                self.rich = RichTimeRemaining()

            def render(self, task: Task) -> Text | str:
                eta = task.fields.get("eta")
                return Text(eta, style="progress.remaining") if eta else self.rich.render(task)

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeLeft(),
            console=self.console,
        ) as bar:
            self._bar = bar
            try:
                yield
            finally:
                self._bar = None


@contextmanager
def progress_view(console: Console, quiet: bool = False) -> Iterator[ProgressView | None]:
    """A :class:`ProgressView` on ``console`` (bars on a terminal, lines elsewhere); ``None`` when ``quiet``."""
    if quiet:
        yield None
        return
    view = ProgressView(console, live=console.is_terminal, interval=progress_interval())
    with view.bars():
        yield view
