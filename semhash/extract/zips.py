"""Opening the zip containers of DOCX/PPTX/XLSX/EPUB/ODF safely: sizes checked before anything inflates."""

from __future__ import annotations

import xml.parsers.expat
import zipfile
from typing import BinaryIO

import semhash.extract as package
from semhash.extract import MALFORMED, TOO_LARGE, SkipFile


def open_zip(source: BinaryIO, what: str) -> zipfile.ZipFile:
    """The zip in ``source``, refused when it is unsafe or no zip.

    Refused when it would unpack to more than the caps (a zip bomb), when one XML part is over
    :data:`~semhash.extract.MAX_XML_PART_BYTES`, or when it is no zip.

    The check reads the declared sizes only; Python's ``zipfile`` never inflates a member past its declared
    size (it stops there and fails the member's CRC check), so the declared total bounds what is unpacked,
    by this code and by python-docx, python-pptx and openpyxl, which read through ``zipfile`` too.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise SkipFile(MALFORMED, f"not a readable {what} (not a zip, or damaged)") from None
    members = archive.infolist()
    total = sum(info.file_size for info in members)
    cap, most = package.MAX_UNZIPPED_BYTES, package.MAX_ZIP_MEMBERS
    if len(members) > most or total > cap:
        archive.close()
        raise SkipFile(
            TOO_LARGE,
            f"{what} would unpack to {total / 2**20:.0f} MiB in {len(members)} parts "
            f"(at most {cap // 2**20} MiB and {most} parts are read)",
        )
    xml_cap = package.MAX_XML_PART_BYTES
    big = [
        i for i in members if i.filename.lower().endswith((".xml", ".rels", ".xhtml", ".opf")) and i.file_size > xml_cap
    ]
    if big:
        archive.close()
        raise SkipFile(
            TOO_LARGE,
            f"{what} has a {big[0].file_size / 2**20:.0f} MiB XML part ({big[0].filename}; at most "
            f"{xml_cap // 2**20} MiB are parsed)",
        )
    return archive


def read_member(archive: zipfile.ZipFile, name: str, what: str) -> bytes:
    """One member's bytes (within the checked total); a missing or damaged one makes the file malformed."""
    try:
        return archive.read(name)
    except KeyError:
        raise SkipFile(MALFORMED, f"not a readable {what}: no {name}") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise SkipFile(MALFORMED, f"not a readable {what}: {name} is damaged ({exc})") from None


class _Refused(Exception):
    pass


def xml_parser() -> xml.parsers.expat.XMLParserType:
    """An expat parser (namespaces as ``"uri local"``) that refuses entity declarations and fetches nothing.

    Streaming handlers on it keep no tree, so any nesting depth costs nothing.
    """
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse(*_: object) -> None:
        raise _Refused("XML entity declarations are not read")

    parser.EntityDeclHandler = refuse
    return parser


def parse_xml(parser: xml.parsers.expat.XMLParserType, data: bytes, what: str) -> None:
    """Feed ``data`` to ``parser``; bad XML (or a refused entity declaration) makes the file malformed."""
    try:
        parser.Parse(data, True)
    except (xml.parsers.expat.ExpatError, _Refused, ValueError) as exc:
        raise SkipFile(MALFORMED, f"not a readable {what} ({exc})") from None
