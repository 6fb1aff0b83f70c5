"""The two 20 Newsgroups protocols of ``benchmarks/datasets/newsgroups.py``: stripped (the default) and 18828."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from benchmarks.datasets import newsgroups

MESSAGE = (
    "From: ann@example.org (Ann)\n"
    "Subject: Re: orbit of the\n"
    "  shuttle\n"
    "Organization: Example University\n"
    "Lines: 7\n"
    "\n"
    "In article <1@x> bob@example.org writes:\n"
    "> the shuttle is low\n"
    "It is at 300 km.\n"
    "\n"
    "-- \n"
    "Ann, rocket club\n"
)


def test_18828_keeps_from_and_subject_and_the_whole_body() -> None:
    text = newsgroups.reduce_to_18828(MESSAGE)
    head, _, body = text.partition("\n\n")
    # The continued Subject line is folded in; Organization and Lines go.
    assert head.split("\n") == ["From: ann@example.org (Ann)", "Subject: Re: orbit of the shuttle"]
    # Quotes and the signature stay (the stripped protocol drops both).
    assert "> the shuttle is low" in body and "Ann, rocket club" in body
    stripped = newsgroups.strip_message(MESSAGE)
    assert "the shuttle is low" not in stripped and "rocket club" not in stripped and "300 km" in stripped


def test_18828_message_without_a_blank_line_is_all_header() -> None:
    assert newsgroups.reduce_to_18828("From: a@b\nLines: 1") == "From: a@b\n\n"
    assert newsgroups.reduce_to_18828("Lines: 1\nPath: x") == ""


def test_18828_drops_later_exact_duplicates_and_empty_posts(tmp_path: Path) -> None:
    twin = MESSAGE.replace("Lines: 7", "Lines: 8")  # differs only in a dropped header: a duplicate
    records = [
        {"id": "sci.space/1", "text": MESSAGE, "labels": ["sci.space"], "split": "train"},
        {"id": "sci.space/2", "text": twin, "labels": ["sci.space"], "split": "test"},
        {"id": "sci.space/3", "text": "Lines: 1\n\n  \n", "labels": ["sci.space"], "split": "test"},
        {"id": "sci.med/4", "text": MESSAGE + "more\n", "labels": ["sci.med"], "split": "test"},
    ]
    source = tmp_path / "20ng.jsonl.gz"
    with gzip.open(source, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    kept = list(newsgroups.read_posts(source, "18828"))
    assert [p.id for p in kept] == ["sci.space/1", "sci.med/4"]
    assert [p.split for p in kept] == ["train", "test"]
    # The stripped protocol keeps both copies (its texts are equal too, but it drops no duplicates).
    assert [p.id for p in newsgroups.read_posts(source)] == ["sci.space/1", "sci.space/2", "sci.med/4"]
