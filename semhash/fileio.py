"""Reading the files semhash keeps beside an index (caches, sidecars, the runtime folder): regular files only.

Every such file is untrusted input: a shared index can come with a crafted one. A FIFO in a cache's place
would make a plain ``open()`` wait for a writer forever, a device would be read without end, and a symbolic
link would read (or a library would map) some other file. So these files are opened without following a
link and without blocking (``O_NOFOLLOW | O_NONBLOCK``), then ``fstat``-ed on the open descriptor: anything
but a regular file, or a file larger than the caller's cap, raises :class:`NotRegularFileError` (an
``OSError``, so each cache's existing "unreadable: rebuild it" path takes it). Paths handed to a library
that opens them itself (faiss, onnxruntime) are checked with :func:`regular_stat` first.
"""

from __future__ import annotations

import errno
import os
import stat
from io import BufferedReader
from pathlib import Path

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class NotRegularFileError(OSError):
    """A file semhash reads is not a regular file (a FIFO, a device, a folder, a link), or is too large.

    ``file_stat`` is what ``fstat``/``lstat`` said of it (``None`` when it grew past the cap while read).
    """

    file_stat: os.stat_result | None = None


def _refuse(path: str | Path, code: int, what: str, st: os.stat_result | None) -> NotRegularFileError:
    error = NotRegularFileError(code, what, str(path))
    error.file_stat = st
    return error


def _check(path: str | Path, st: os.stat_result, max_bytes: int | None) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, errno.EINVAL, "not a regular file", st)
    if max_bytes is not None and st.st_size > max_bytes:
        raise _refuse(path, errno.EFBIG, f"larger than {max_bytes} bytes", st)


def regular_stat(path: str | Path, max_bytes: int | None = None) -> os.stat_result:
    """``lstat`` of ``path``, which must be a regular file (a link is not followed) of at most ``max_bytes``."""
    st = os.lstat(path)
    _check(path, st, max_bytes)
    return st


def open_regular(path: str | Path, max_bytes: int | None = None, follow: bool = False) -> BufferedReader:
    """``path`` opened for binary reading, after checking on the open descriptor that it is a regular file.

    A symbolic link in the last component is refused (``ELOOP``) unless ``follow`` (the corpus reader follows
    links it has already resolved inside the folders it was given; caches and sidecars never).

    Raises:
        NotRegularFileError: not a regular file (never waited on), or larger than ``max_bytes``.
        OSError: it cannot be opened (missing, a symbolic link: ``ELOOP``, no permission).
    """
    fd = os.open(path, _FLAGS | (0 if follow else _NOFOLLOW))
    try:
        _check(path, os.fstat(fd), max_bytes)
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
        vars(handle.raw)["name"] = str(path)  # as open() names it (not the descriptor's number)
        return handle
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, max_bytes: int) -> bytes:
    """The whole content of the regular file ``path``, at most ``max_bytes`` (see :func:`open_regular`)."""
    with open_regular(path, max_bytes) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew after the check
        raise _refuse(path, errno.EFBIG, f"larger than {max_bytes} bytes", None)
    return data
