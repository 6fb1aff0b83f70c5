"""Errors that semhash raises on purpose.

Every message names the problem *and* the fix, in one line, so the CLI can print it as is
(``error: <message>``) and exit 1. Anything that is not a :class:`SemhashError` is a bug.
"""

from __future__ import annotations


class SemhashError(Exception):
    """Base class: an expected failure with a one-line, actionable message."""

    exit_code = 1


class UsageError(SemhashError):
    """The command line or the API call itself is wrong (exit code 2)."""

    exit_code = 2


class CorpusError(SemhashError):
    """A path to index is missing, or the corpus holds no readable document."""


class IndexMissingError(SemhashError):
    """There is no index (database) yet, or it holds no document."""


class SchemaError(SemhashError):
    """The database was written by a newer semhash, or is not a semhash database."""


class DatabaseLockedError(SemhashError):
    """Another process holds a write lock on the database."""


class ModelMismatchError(SemhashError):
    """The embedding model asked for differs from the one the index was built with."""


class ModelLoadError(SemhashError):
    """The sentence-transformers model could not be loaded."""


class CorruptIndexError(SemhashError):
    """The faiss file beside the database cannot be read (it is rebuilt from SQLite)."""


class DeviceError(SemhashError):
    """A device was demanded that this machine does not have."""


class DocumentNotFoundError(SemhashError):
    """A document asked for by path or id is not in the index."""


class OutputError(SemhashError):
    """A file could not be written into the folder the user named."""


class UnsafePathError(OutputError):
    """A path read from the index would write outside the folder the user named (or is not a path semhash stores)."""


class ReadOnlyDatabaseError(SemhashError):
    """A command that writes was given a database (or a folder) it cannot write to."""


class StorageError(SemhashError):
    """Writing to disk failed (the disk is full, or an I/O error); what was committed before is kept."""


class CorruptModelError(SemhashError):
    """The hashing model stored in the database cannot be read (``semhash train`` rebuilds it)."""


class CorruptDatabaseError(SemhashError):
    """A value stored in the database is damaged (wrong size, not a number)."""


class RuntimeUnavailableError(SemhashError):
    """The exported runtime folder is missing, partial, damaged or of another format (use the torch path)."""


class EngineUnavailableError(SemhashError):
    """The engine asked for needs a package that is not installed (exit code 1)."""


class EngineError(SemhashError):
    """The distributed engine failed (a worker died, the cluster went away); committed batches are kept."""


class NoDocumentsError(CorpusError):
    """The paths to index hold no readable document; ``skipped`` lists the files not read, with reasons."""

    def __init__(self, message: str, skipped: list | None = None, passed_over: list | None = None) -> None:
        super().__init__(message)
        self.skipped = list(skipped or [])
        #: files not read by design (unsupported type, hidden, excluded), counted by extension.
        self.passed_over = list(passed_over or [])
