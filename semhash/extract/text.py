"""Decoding a text file's bytes: which encoding, decided per file, and why (issue 18).

In order: a byte-order mark (UTF-8, UTF-16, UTF-32) wins; then a NUL byte in the first 8 KiB means binary;
then ASCII-only bytes read as UTF-8 (every declaration gives the same text); then, for HTML, the XML
declaration's ``encoding`` or a ``<meta charset>`` / ``http-equiv`` content type in the first 4 KiB (as
browsers do, ``iso-8859-1`` and ``ascii`` mean windows-1252, and a declared UTF-16 without a BOM means
UTF-8); then strict UTF-8; then charset-normalizer's best guess, if the whole file decodes with it. A
declaration the bytes contradict (they do not decode) is passed over, not trusted. Nothing fits:
:class:`~semhash.extract.SkipFile` ``undecodable``.
"""

from __future__ import annotations

import codecs
import re

from semhash.extract import BINARY, UNDECODABLE, SkipFile

_BINARY_SNIFF = 8192
_DECLARATION_SNIFF = 4096
_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_WIDE = ("utf_16", "utf_32", "utf_7")
_CP1252_MARGIN = 0.05
_XML_DECLARATION = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)
#: WHATWG's encoding labels where they differ from Python's codecs.
_WEB_LABELS = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "utf-16": "utf-8",
    "utf-16le": "utf-8",
    "utf-16be": "utf-8",
}


def decode(raw: bytes, html: bool = False) -> tuple[str, str]:
    """``(text, encoding)`` of a text file's bytes (the BOM dropped); raises ``SkipFile`` (binary, undecodable)."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom) :].decode(encoding), encoding
            except UnicodeDecodeError as exc:
                why = f"not valid {encoding} despite its byte-order mark (byte {exc.start})"
                raise SkipFile(UNDECODABLE, why) from None
    if b"\x00" in raw[:_BINARY_SNIFF]:
        raise SkipFile(BINARY, "binary file")
    if raw.isascii():  # the same text in UTF-8 and in every encoding a page can declare: nothing to note
        return raw.decode("ascii"), "utf-8"
    if html:
        declared = declared_encoding(raw[:_DECLARATION_SNIFF])
        if declared is not None:
            try:
                return raw.decode(declared), declared
            except UnicodeDecodeError:
                pass  # the declaration is wrong: the bytes decide
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    guess = _detect(raw)
    if guess is not None:
        try:
            return raw.decode(guess), guess
        except (UnicodeDecodeError, LookupError):
            pass
    raise SkipFile(UNDECODABLE, f"not UTF-8 (byte {first_bad}) and no other encoding fits")


def declared_encoding(head: bytes) -> str | None:
    """The Python codec an HTML/XML head declares (XML declaration first, then ``<meta>``), if it is known."""
    for pattern in (_XML_DECLARATION, _META_CHARSET):
        found = pattern.search(head)
        if found:
            label = found.group(1).decode("ascii").lower()
            label = _WEB_LABELS.get(label, label)
            try:
                return codecs.lookup(label).name
            except LookupError:
                return None
    return None


def _detect(raw: bytes) -> str | None:
    """charset-normalizer's best guess for ``raw`` (``None``: nothing plausible).

    windows-1252 (the web's and Windows' default legacy encoding) is preferred when charset-normalizer finds
    it nearly as plausible as its first guess (mess ratio within :data:`_CP1252_MARGIN`): on short Western
    text it often ranks cp1250, cp775 or cp1257 first, which turn French or German accents into noise.
    Without a BOM, UTF-16/32 text has NUL bytes (sniffed as binary before this), so those are never guessed.
    """
    from charset_normalizer import from_bytes

    results = [r for r in from_bytes(raw) if not r.encoding.startswith(_WIDE)]
    if not results:
        return None
    best = results[0]
    near = [name for r in results if r.chaos <= best.chaos + _CP1252_MARGIN for name in r.could_be_from_charset]
    encoding = "cp1252" if "cp1252" in near else best.encoding
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return None
