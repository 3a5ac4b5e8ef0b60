"""Replacing a file atomically: write beside it, then rename over it."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

# Bytes copied per call from the temporary file, when the dump cannot rename one.
COPY_PIECE = 1 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@contextlib.contextmanager
def replacing(path: str, *, fsync: bool = False) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only when the ``with`` block succeeds.

    The data goes to a temporary file in the same directory, renamed over ``path`` at
    the end, so a reader (or a crash) never sees a half-written file and the old one
    survives any failure. The new file keeps the old one's permission bits, writes
    through a symlink to its target, and leaves devices and FIFOs to plain writes.
    With ``fsync``, the data is flushed to disk before the rename and the directory
    after it, so that after a power failure the path holds the old or the new file,
    complete (without it, the rename may reach the disk before the data).
    """
    if not path or path.endswith((os.sep, os.altsep or os.sep)):
        # What open(path, "wb") says, before a temporary name could appear in the error.
        code = errno.EISDIR if path else errno.ENOENT
        raise (IsADirectoryError if path else FileNotFoundError)(code, os.strerror(code), path)
    if os.path.islink(path):
        _check_link(path)
        target = os.path.realpath(path)
    else:
        target = path
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    mode = None if old is None else old.st_mode
    if mode is not None and not stat.S_ISREG(mode):
        with open(target, "wb") as f:
            yield f
        return
    if mode is not None:
        _check_writable(target, path)
    directory = os.path.dirname(os.path.abspath(target))
    tmp = os.path.join(directory, _temporary_name(directory, os.path.basename(target)))
    try:
        # open(), not os.open(): the descriptor is a file object's from the moment it
        # exists, so a Ctrl-C landing as the call returns (a signal raised during the
        # creation is raised then) cannot leak it.
        made = open(tmp, "xb")  # noqa: SIM115 - closed by the with below
    except PermissionError as exc:
        if mode is None:  # nothing to write in place, and nothing can be made here
            raise _naming(exc, path) from None
        made = None
    except OSError as exc:
        raise _naming(exc, path) from None
    except BaseException:
        _remove(tmp)  # interrupted around the creation: the name is ours (random, "x")
        raise
    if made is None:
        with _in_place(target, path, fsync) as f:
            yield f
        return
    try:
        with made as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
            written = _identity(os.fstat(f.fileno()))
        if mode is not None:
            os.chmod(tmp, stat.S_IMODE(mode))
        try:
            os.replace(tmp, target)
        except PermissionError as exc:
            if not _sticky_refusal(exc, directory, old):
                raise _naming(exc, path) from None
            # A sticky directory (a team's shared cache, /tmp) forbids replacing a file
            # another user owns, though its permission bits let us write it: as joblib
            # did, write it in place, from the complete temporary file.
            _write_over(tmp, written, target, old, path, fsync)
            os.unlink(tmp)
        except OSError as exc:
            raise _naming(exc, path) from None
    except BaseException:
        _remove(tmp)
        raise
    if fsync:
        _fsync_directory(directory)


def _remove(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _check_link(path: str) -> None:
    """Refuse to follow ``path``, a symlink, where another user may have planted it: in
    a sticky directory, a link owned by neither the caller nor the directory's owner.

    The rule Linux's ``protected_symlinks`` applies to ``open()`` in world-writable
    sticky directories, which the dump's own resolving of the link would bypass, and
    applied to every sticky directory (a team cache of mode 1775 too): such a link
    could send the dump over any file the caller may write."""
    if not hasattr(os, "geteuid"):
        return
    try:
        link = os.lstat(path)
        folder = os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return  # gone already: the resolving below fails as open() would
    if folder.st_mode & stat.S_ISVTX and link.st_uid not in (os.geteuid(), folder.st_uid):
        code = errno.EACCES
        raise PermissionError(code, f"{os.strerror(code)} (a symlink another user owns)", path)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _sticky_refusal(exc: OSError, directory: str, old: os.stat_result | None) -> bool:
    """Whether ``os.replace`` was refused, over the existing file ``old``, because the
    directory is sticky and another user owns the file (any other refusal, a Windows
    sharing violation for one, stands: writing in place there would change a file
    another process holds open)."""
    if old is None or not hasattr(os, "geteuid") or exc.errno != errno.EPERM:
        return False
    try:
        sticky = os.stat(directory).st_mode & stat.S_ISVTX
    except OSError:
        return False
    return bool(sticky) and old.st_uid != os.geteuid()


def _write_over(
    tmp: str, written: tuple[int, int], target: str, old: os.stat_result, path: str, fsync: bool
) -> None:
    """Copy the complete temporary file ``tmp`` over ``target`` in place, both opened
    again without following symlinks and checked to be the files written and found
    (``written``, ``old``); under an exclusive lock, so that two dumps doing this at
    once leave one of them whole. Errors name ``path``."""
    import fcntl  # POSIX only, as is this path

    try:
        with (
            open(os.open(tmp, os.O_RDONLY | _NOFOLLOW), "rb") as done,
            os.fdopen(_open_existing(target, path), "wb") as f,
        ):
            found = _identity(os.fstat(f.fileno()))
            if _identity(os.fstat(done.fileno())) != written or found != _identity(old):
                code = errno.EPERM
                raise PermissionError(code, f"{os.strerror(code)} (replaced during the dump)")
            fcntl.lockf(f.fileno(), fcntl.LOCK_EX)
            _copy_over(done, f, fsync)
    except OSError as exc:
        raise _naming(exc, path) from None


def _naming(exc: OSError, path: str) -> OSError:
    """``exc`` naming ``path``, the name the caller gave: an error naming a random
    temporary name (or a symlink's target) would send them looking for a file they
    never mentioned."""
    return type(exc)(exc.errno, exc.strerror, path)


def _open_existing(target: str, path: str) -> int:
    """``target`` opened for writing, not truncated; failing as ``open(path, "wb")``.

    ``target`` is no symlink (a link given as ``path`` was resolved): one found there
    now was swapped in since, as in a shared directory another user can write, and it
    is not followed."""
    try:
        return os.open(target, os.O_WRONLY | getattr(os, "O_BINARY", 0) | _NOFOLLOW)
    except OSError as exc:
        raise _naming(exc, path) from None


def _check_writable(target: str, path: str) -> None:
    """Refuse to replace a file the caller may not write, as ``open(path, "wb")`` would
    (a read-only file guards against overwriting, though its directory allows a rename).

    Opened for writing without truncation and closed at once: the file is untouched.
    Where the system can say so without opening it (``access`` with the effective ids),
    it is not opened unless refused, to see how: a descriptor opened here could leak
    to a Ctrl-C landing between the open and the close."""
    if os.access in os.supports_effective_ids and os.access(target, os.W_OK, effective_ids=True):
        return
    os.close(_open_existing(target, path))


@contextlib.contextmanager
def _in_place(target: str, path: str, fsync: bool) -> Iterator[BinaryIO]:
    """For a directory where no file can be made (joblib wrote in place): the file is
    opened first, so that one that cannot be written fails at once, then the dump goes
    to an anonymous temporary file (``TMPDIR``), copied over the file only once
    complete. A dump that fails (an unpicklable object, Ctrl-C) leaves the file intact;
    only a failure of the copy itself (a full disk) can damage it. Without a usable
    temporary directory, the dump writes in place."""
    with os.fdopen(_open_existing(target, path), "wb") as f:  # no truncation yet
        try:
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the with below
        except OSError:
            spool = None
        if spool is None:
            f.truncate(0)
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        else:
            with spool:
                yield spool
                spool.seek(0)
                _copy_over(spool, f, fsync)


def _copy_over(done: BinaryIO, f: BinaryIO, fsync: bool) -> None:
    """Replace the content of ``f`` (open for writing at its start) by that of
    ``done``, a complete dump: only a failure of this copy (a full disk) can leave the
    file damaged."""
    f.truncate(0)
    shutil.copyfileobj(done, f, COPY_PIECE)
    if fsync:
        f.flush()
        os.fsync(f.fileno())


def _temporary_name(directory: str, name: str) -> str:
    """``.<name>.<random>.tmp``, the name shortened to fit the file system's limit on a
    name's length (a 255-byte name is legal, and its temporary name must be too)."""
    try:
        limit = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    token = secrets.token_hex(6)
    while name and len(os.fsencode(f".{name}.{token}.tmp")) > limit:
        name = name[:-1]
    return f".{name}.{token}.tmp"


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
