"""What a query asks for: its options (:class:`QueryOptions`, the ranking ``MODES``) and its text made valid."""

from __future__ import annotations

from dataclasses import dataclass

from semhash.config import DEFAULT_K, DEFAULT_MODE
from semhash.errors import UsageError

#: The rankings a query can use (``--mode``).
MODES = ("semantic", "keyword", "hybrid")


@dataclass
class QueryOptions:
    """How results are chosen.

    Attributes:
        k: number of hits.
        rerank: re-order a pool of Hamming candidates by cosine (else Hamming order, ties by id).
        radius: every document within this many bits instead of a top ``k``.
        device: where the query is embedded.
        pool: Hamming candidates to re-rank (``None``: :func:`rerank_pool` of ``k`` and the index size).
        exact: rank every stored embedding by cosine (no Hamming stage; refused above ``MAX_EXACT_DOCS``).
        mode: ``semantic``, ``keyword`` or ``hybrid`` (see the module docstring).
        collapse: fold hits with the same content, or near-identical text, into one (``Hit.copies``,
            ``Hit.folded``; :mod:`semhash.search.twins`).
        passages: also find the passage of hits whose documents have no stored window vectors (indexed
            before schema 4): their text cut into windows embedded at query time (see
            :meth:`Searcher.passages`). Hits with stored windows always get theirs (a dot product).
    """

    k: int = DEFAULT_K
    rerank: bool = True
    radius: int | None = None
    device: str = "auto"
    pool: int | None = None
    exact: bool = False
    mode: str = DEFAULT_MODE
    collapse: bool = True
    passages: bool = False

    def validate(self, bits: int) -> None:
        """Raise :class:`UsageError` for out-of-range or contradictory values."""
        if self.k < 1:
            raise UsageError(f"-k must be at least 1, not {self.k}")
        if self.radius is not None and not 0 <= self.radius <= bits:
            raise UsageError(f"--radius must be between 0 and {bits}, not {self.radius}")
        if self.pool is not None and self.pool < 1:
            raise UsageError(f"--pool must be at least 1, not {self.pool}")
        if self.exact and (self.radius is not None or not self.rerank):
            raise UsageError("--exact ranks by cosine alone: drop --radius and --no-rerank")
        if self.mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode != "semantic" and (self.radius is not None or not self.rerank):
            raise UsageError(f"--mode {self.mode} ranks by words too: --radius and --no-rerank need --mode semantic")


def valid_unicode(text: str) -> str:
    r"""``text`` with every lone surrogate replaced by U+FFFD, so any tokenizer can read it.

    A command line holding bytes that are not UTF-8 reaches Python as surrogate escapes (PEP 383), and a
    JSON string may hold a lone ``\ud800``; tokenizers refuse both with a ``TypeError``. Valid text is
    returned as it is (the check is one encode).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text
