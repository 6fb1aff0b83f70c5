"""A passage made readable: its markup cleaned away, the query's words found in it, and a piece that fits a width.

The one place that turns a window of stored text into what people read (the CLI's snippet column, the
server page, ``--json``'s ``passage.text``): :func:`clean_markup` drops HTML/XML tags and comments,
character entities and Markdown's link, heading, emphasis and code-fence marks, and joins the lines;
:func:`highlights` finds the query's words in the cleaned text (``[start, end)`` offsets, so the CLI
emphasises and the page marks the same words); :func:`fit` cuts it to a width around the first of them.
"""

from __future__ import annotations

import html
import re

from semhash.lexical import ENGLISH_STOP_WORDS
from semhash.search.keyword import MAX_KEYWORD_TERMS, WORD

_COMMENT = re.compile(r"<!--.*?(?:-->|$)|^.*?-->", re.S)
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,500}>|<!\w[^<>]{0,500}>|<\?[^<>]{0,500}\?>")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]\n]{0,300})\]\([^)\n]{0,500}\)")
_REFERENCE = re.compile(r"^\s*\[[^\]\n]+\]:\s*\S+.*$", re.M)
_FENCE = re.compile(r"^\s*(?:```|~~~)\S*\s*$", re.M)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.M)
_RULE = re.compile(r"^\s*(?:[-*_=]\s*){3,}$", re.M)
_EMPHASIS = re.compile(r"(\*\*|__|`+)")
#: Word endings dropped from a query's word before it is looked for (``levels`` finds ``level``).
_ENDINGS = ("ing", "es", "ed", "s")


def clean_markup(text: str) -> str:
    """``text`` without markup, on one line (see the module docstring); plain text comes back only re-spaced.

    Each pattern runs only when a character it needs is in the text: a query cleans ten passages, and plain
    text then costs a few ``in`` tests rather than eight regular-expression passes.
    """
    if "-->" in text or "<!--" in text:
        text = _COMMENT.sub(" ", text)
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "[" in text:
        text = _IMAGE_OR_LINK.sub(r"\1", text)
        text = _REFERENCE.sub(" ", text)
    if "```" in text or "~~~" in text:
        text = _FENCE.sub(" ", text)
    if "#" in text:
        text = _HEADING.sub("", text)
    if "---" in text or "***" in text or "___" in text or "===" in text or "- -" in text or "* *" in text:
        text = _RULE.sub(" ", text)
    if "**" in text or "__" in text or "`" in text:
        text = _EMPHASIS.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    return " ".join(text.split())


def query_terms(query: str) -> list[str]:
    """The words of a query worth marking: lower case, no stop words or single letters, common endings dropped.

    At most :data:`~semhash.search.keyword.MAX_KEYWORD_TERMS` (a pasted page, ``--file``: its first distinct words).
    """
    terms: list[str] = []
    for word in WORD.findall(query.lower()):
        if len(terms) >= MAX_KEYWORD_TERMS:
            break
        if word in ENGLISH_STOP_WORDS or len(word) < 2:
            continue
        for ending in _ENDINGS:
            if len(word) - len(ending) >= 4 and word.endswith(ending):
                word = word[: -len(ending)]
                break
        if word not in terms:
            terms.append(word)
    return terms


def highlights(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """``[start, end)`` of every word of ``text`` that starts with one of ``terms`` (case-insensitive), in order."""
    if not terms:
        return []
    pattern = re.compile(
        r"\b(?:" + "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)) + r")\w*", re.I
    )
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def fit(text: str, marks: list[tuple[int, int]], width: int) -> tuple[str, list[tuple[int, int]]]:
    """A piece of ``text`` at most ``width`` characters long, around its first mark, and the marks inside it.

    The piece starts a quarter of the width before the first mark (at the text's start when there is none),
    at a word boundary where one is near; ``…`` shows where text was cut. Marks are shifted to the piece.
    """
    width = max(8, width)
    if len(text) <= width:
        return text, list(marks)
    at = marks[0][0] if marks else 0
    begin = max(0, min(at - width // 4, len(text) - width + 1))
    if begin:
        space = text.find(" ", begin, at if at > begin else begin + width // 4)
        begin = space + 1 if space >= 0 else begin
    lead = "…" if begin else ""
    room = width - len(lead)
    end = begin + room
    if end < len(text):
        end -= 1  # room for the closing ellipsis
        space = text.rfind(" ", begin + room * 3 // 4, end)
        end = space if space > begin else end
    piece = lead + text[begin:end] + ("…" if end < len(text) else "")
    shift = len(lead) - begin
    inside = [(a + shift, min(b, end) + shift) for a, b in marks if a >= begin and a < end]
    return piece, inside
