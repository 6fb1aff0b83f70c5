"""Records of JSON, JSONL and CSV files: one document per object, line or row, from a text field.

Untrusted input: a JSON value nested deeper than Python's recursion limit (``[[[[...`` 100,000 deep) is
reported as malformed, never a ``RecursionError``; so is a CSV field over the csv module's size limit.
"""

from __future__ import annotations

import csv
import io
import json

from semhash.extract import MALFORMED, SkipFile

_TOO_DEEP = "nested too deeply"


def _field(obj: object, name: str, where: str) -> str:
    if not isinstance(obj, dict):
        raise SkipFile(MALFORMED, f"{where} is not a JSON object")
    if name not in obj:
        raise SkipFile(MALFORMED, f"{where} has no field {name!r} (choose one with --text-field)")
    value = obj[name]
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except RecursionError:
        raise SkipFile(MALFORMED, f"{where}: field {name!r} is {_TOO_DEEP}") from None


def json_records(text: str, name: str) -> list[tuple[int, str]]:
    """``(record, text)`` of a JSON object or list of objects, numbered from 1."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SkipFile(MALFORMED, f"invalid JSON (line {exc.lineno})") from None
    except RecursionError:
        raise SkipFile(MALFORMED, f"invalid JSON: {_TOO_DEEP}") from None
    items = data if isinstance(data, list) else [data]
    return [(i + 1, _field(item, name, f"item {i + 1}")) for i, item in enumerate(items)]


def jsonl_records(text: str, name: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of each non-blank line of a JSONL file (one object per line)."""
    texts = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise SkipFile(MALFORMED, f"invalid JSON on line {lineno}") from None
        except RecursionError:
            raise SkipFile(MALFORMED, f"invalid JSON on line {lineno}: {_TOO_DEEP}") from None
        texts.append((lineno, _field(obj, name, f"line {lineno}")))
    return texts


def csv_records(text: str, column: str) -> list[tuple[int, str]]:
    """``(row number, text)`` of a CSV file with a header, from column ``column``."""
    try:
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise SkipFile(MALFORMED, f"no column {column!r} (choose one with --text-column)")
        return [(i, row.get(column) or "") for i, row in enumerate(reader, start=1)]
    except csv.Error as exc:
        raise SkipFile(MALFORMED, f"invalid CSV: {exc}") from None


__all__ = ["csv_records", "json_records", "jsonl_records"]
