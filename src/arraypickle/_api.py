"""``dump``, ``load``, ``dumps``, ``loads``: joblib's call shapes over the container."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import pickle
import socket
import stat
from collections.abc import Iterable
from typing import Any, Literal, overload

from . import _format as fmt
from . import _joblib, _progress, _remote
from ._atomic import replacing
from ._compress import resolve
from ._damage import (
    check_unrecognised,
    data_follows,
    failed_lookup,
    refused_by_pickling,
)
from ._detect import COMPRESSED, CONTAINER, JOBLIB_ZF, detect, open_decoder
from ._errors import (
    ArrayPickleError,
    CorruptFileError,
    EmptyFileError,
    FileModeError,
    InvalidArgumentError,
    as_flag,
    describe,
)
from ._numpy import KEEP_BYTE_ORDER
from ._parallel import resolve_threads
from ._pickler import Pickler
from ._plugins import Registry, get_registry
from ._reader import ContainerReader, MmapTarget, Unpickler
from ._safe import Policy, checked_plain, make_policy
from ._streams import (
    Guarded,
    LiveLoad,
    ShortReads,
    WholeWrites,
    check_resumable,
    explain,
    finish_live,
    finish_seekable,
    is_seekable,
    refusing_nothing_yet,
    remaining_size,
    remember,
)
from ._typing import Compress, Path, Progress, Readable, Writable
from ._warnings import warn_caller
from ._writer import ContainerWriter, abandon

MMAP_MODES = (None, "r", "r+", "w+", "c")
# np.memmap's long names for them, which joblib passes through to numpy
MMAP_ALIASES = {"readonly": "r", "readwrite": "r+", "write": "w+", "copyonwrite": "c"}

# readinto pieces: each is hashed right after it is read, while still in the CPU
# cache (2 MiB measured best: 0.074 s for a 300 MB load, 0.091 s with 16 MiB); from
# a decompressing reader they also bound the reader's own buffers.
_PIECE = 2 << 20
_MAX_CODEC_PIECE = 64 << 20


@overload
def dump(
    value: Any,
    filename: Path,
    compress: Compress = 0,
    protocol: int | None = None,
    *,
    fsync: bool = False,
    threads: int | None = None,
    progress: Progress = False,
    storage_options: dict[str, Any] | None = None,
) -> list[str]: ...


@overload
def dump(
    value: Any,
    filename: Writable,
    compress: Compress = 0,
    protocol: int | None = None,
    *,
    fsync: bool = False,
    threads: int | None = None,
    progress: Progress = False,
    storage_options: dict[str, Any] | None = None,
) -> None: ...


def dump(
    value: Any,
    filename: Path | Writable,
    compress: Compress = 0,
    protocol: int | None = None,
    *,
    fsync: bool = False,
    threads: int | None = None,
    progress: Progress = False,
    storage_options: dict[str, Any] | None = None,
) -> list[str] | None:
    """Persist ``value`` into one file, array buffers written straight from memory.

    Parameters:
        value: any picklable object; numpy arrays in it (at any depth) have their
            data written out of band, 64-byte aligned, without copies.
        filename: a path (``str`` or ``os.PathLike``) or a writable binary file
            object (seekable or not: pipes and sockets work). A path is written to a
            temporary file beside it and renamed over it, so a failed dump never
            damages an existing file.
        compress: ``0``/``False`` for none; ``True`` for zlib level 3; an int 1..9 for
            zlib at that level; a codec name for its default level; or
            ``(name, level)`` with level 0..9 (0: no compression). When ``compress``
            is not a tuple and the path ends with a codec's extension (``.z``,
            ``.gz``, ``.bz2``, ``.lzma``, ``.xz``, plus plugins'), that codec is used.
        protocol: the pickle protocol of the opcode stream (default 5).
        fsync: for a path, flush the data and then the directory entry to the disk
            before returning, so the new file survives a power failure (slower).
            Ignored for file objects: flushing those is the caller's business.
        threads: threads compressing in parallel: None (the default) for every core
            this process may use (its affinity mask, bounded by a container's CPU
            quota and by ``ARRAYPICKLE_MAX_THREADS``), 1 for no compression workers
            (an uncompressed buffer of 4 MiB or more is still hashed on one helper
            thread while the next is written). Codecs that are not parallel ignore
            it; the file is the same for every value (see ``docs/guide.md``, "Parallelism").
        progress: ``True`` for a progress bar on stderr (files over 100 MiB), or a
            callable receiving ``(done_bytes, None)`` as the file is written and
            ``(total, total)`` at the end (see ``docs/progress.md``).
        storage_options: for a URL (``s3://``, ``gcs://``...), options of its fsspec
            filesystem (credentials, endpoint); see ``docs/remote.md``.

    Returns:
        ``[os.fspath(filename)]`` for a path, ``None`` for a file object.

    Raises:
        UnpicklableError: ``value`` holds what the pickler refuses (a lambda, a
            local class, a lock, a generator); the target is left as it was.
        UnknownCodecError: ``compress`` or the file's extension names a codec that
            is not installed (the message says what to install).
        InvalidArgumentError: an argument is wrong (a level outside 0..9, a
            ``filename`` that is neither a path nor a writable binary file object).

    Examples:

        >>> import numpy as np, arraypickle
        >>> model = {"w": np.ones((1000, 1000))}
        >>> arraypickle.dump(model, "model.pkl")
        ['model.pkl']
        >>> arraypickle.dump([1, 2], "small.pkl.gz")  # gzip, from the extension
        ['small.pkl.gz']
        >>> arraypickle.dump(model, "model.pkl.z", compress=3, threads=2)
        ['model.pkl.z']
        >>> arraypickle.dump(model, "s3://bucket/model.pkl")  # needs arraypickle[remote]
        ['s3://bucket/model.pkl']
    """
    registry = get_registry()
    proto = _protocol(protocol)
    nthreads = resolve_threads(threads)
    _progress.check(progress)
    fsync = as_flag("fsync", fsync)
    if isinstance(filename, (str, os.PathLike)):
        path = _path_of(filename)
        codec, level = resolve(compress, path, registry)
        target = _remote.locate(path, storage_options)
        opener = replacing(target, fsync=fsync) if isinstance(target, str) else target.writing()
        with _progress.track(progress, "dump", path) as tracker, opener as out:
            _write(value, tracker.writer(out), codec, level, proto, registry, nthreads)
        # The path itself: str() of an os.PathLike that is not a pathlib path is
        # not a file name.
        return [path]
    _no_storage_options(storage_options, filename)
    if callable(getattr(filename, "write", None)):
        _check_binary(filename, "writing")
        codec, level = resolve(compress, None, registry)
        out = WholeWrites(_remote.bounded_writer(filename))
        with _progress.track(progress, "dump", describe(filename)) as tracker:
            _write(value, tracker.writer(out), codec, level, proto, registry, nthreads)
        return None
    raise InvalidArgumentError(
        "Second argument should be a filename (str or os.PathLike) or a writable binary "
        f"file object, {filename!r} (type {type(filename).__name__}) was given."
    )


def dumps(
    value: Any,
    compress: Compress = 0,
    protocol: int | None = None,
    *,
    threads: int | None = None,
    progress: Progress = False,
) -> bytes:
    """Persist ``value`` into ``bytes``: :func:`dump` into memory.

    Parameters:
        value: any picklable object, as for :func:`dump`.
        compress: as for :func:`dump` (with no file name, no extension picks a codec).
        protocol: as for :func:`dump`.
        threads: as for :func:`dump`.
        progress: as for :func:`dump`.

    Returns:
        The bytes a file written by :func:`dump` would hold.

    Examples:

        >>> blob = arraypickle.dumps(np.arange(10), compress="gzip")
        >>> arraypickle.loads(blob)[-1]
        np.int64(9)
    """
    out = io.BytesIO()
    dump(value, out, compress=compress, protocol=protocol, threads=threads, progress=progress)
    return out.getvalue()


def load(
    filename: Path | Readable,
    mmap_mode: str | None = None,
    ensure_native_byte_order: bool | Literal["auto"] = "auto",
    *,
    safe: bool = False,
    trusted: Iterable[Any] | None = None,
    verify: bool = True,
    threads: int | None = None,
    progress: Progress = False,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """Load an object saved by :func:`dump` (or by ``pickle``, or compressed by a tool).

    The format is detected from the first bytes, never from the name: an arraypickle
    container, a container (or pickle) inside any installed codec's stream, or a
    plain pickle stream. Files written by ``joblib.dump`` (any version, compressed or
    not, Python 2 ones included) load too, without joblib: see ``docs/joblib.md``.

    Parameters:
        filename: a path or a readable binary file object, seekable or not. From a
            stream, the load stops right after the object, so objects dumped back
            to back load one by one.
        mmap_mode: ``None``, ``'r'``, ``'r+'``, ``'w+'`` (same as ``'r+'``) or ``'c'``;
            also as ``np.memmap`` spells them (``'readonly'``, ``'readwrite'``,
            ``'write'``, ``'copyonwrite'``).
            For an uncompressed file given by path, every non-object array comes back
            mapped from the file in that mode (in its stored byte order): a plain one
            as an ``np.memmap``, a subclass (``np.matrix``...) as its class over one.
            Compressed files, file objects, remote stores and plain pickles holding
            arrays load into memory instead, with a ``UserWarning`` (``file://`` URLs
            are local files and map; an uncompressed plain pickle given by path and
            holding no array loads quietly).
        ensure_native_byte_order: joblib 1.5's argument, third as in its
            ``load``. ``'auto'``: arrays come back native-endian, except
            memory-mapped ones, which stay as stored (and structured arrays whose
            fields overlap, which have no native form). ``True``: the same, and
            refused together with an ``mmap_mode`` (a mapped array cannot be
            swapped in place). ``False``: every array keeps its stored byte order.
        safe: import only allow-listed globals (builtin value types, stdlib
            containers and value types, numpy arrays, dtypes and scalars; see
            ``docs/security.md``). Every global the file names is checked before
            anything in it runs, and again as the load imports it; so are the states
            the file sets on objects (numpy dtypes and object arrays among them).
        trusted: more globals to allow, as ``'module.qualname'`` strings or the
            classes and functions themselves; giving it (even empty) implies ``safe``.
        verify: check the xxh3-64 checksum of every array buffer as it is read (record
            headers and pickle opcodes are always checked). ``False`` skips the buffer
            checksums; memory-mapped buffers are never hashed (that would read them).
            A plain pickle or a joblib file has no checksums: its opcodes are walked
            for a damaged memo index, which CPython's unpickler would turn into a huge
            allocation (``docs/integrity.md``); ``False`` skips that walk too.
        threads: threads decompressing in parallel, for codecs whose streams allow
            it (None: every usable core; 1: no decompression workers, though with
            ``verify`` a buffer of 4 MiB or more is hashed on one helper thread).
            Above 1, an uncompressed regular file's buffers of 8 MiB or more are
            read on two threads.
        progress: ``True`` for a progress bar on stderr (files over 100 MiB), or a
            callable receiving ``(done_bytes, file_size or None)`` (see
            ``docs/progress.md``).
        storage_options: for a URL (``s3://``, ``gcs://``...), options of its fsspec
            filesystem (credentials, endpoint); see ``docs/remote.md``.

    Returns:
        The object. Arrays from arraypickle and joblib files are native-endian
        (unless ``ensure_native_byte_order=False``), writable, 64-byte aligned
        (memory-mapped ones stay as stored); those from plain pickles are as
        ``pickle`` builds them.

    Raises:
        CorruptFileError: the file is truncated, damaged or not a known format; the
            message names the file and the record or offset at fault. A file given
            by path must hold one object and nothing after it. Under safe loading,
            also a state no pickler writes ("refusing to load: BUILD at opcode N").
        UnknownCodecError: the file is compressed by a codec that is not installed.
        UntrustedTypeError: under safe loading, the file names globals that are
            neither allow-listed nor trusted (all of them are listed).
        InvalidArgumentError: an argument is wrong (an unknown ``mmap_mode``, a
            ``filename`` that is neither a path nor a readable binary file object,
            ``ensure_native_byte_order=True`` with an ``mmap_mode``).

    Examples:

        >>> model = arraypickle.load("model.pkl")
        >>> mapped = arraypickle.load("model.pkl", mmap_mode="r")
        >>> data = arraypickle.load("download.pkl", safe=True)
        >>> est = arraypickle.load("model.pkl", trusted=["mylib.models.Net"])
        >>> remote = arraypickle.load("s3://bucket/model.pkl")  # arraypickle[remote]
    """
    if isinstance(mmap_mode, str):
        mmap_mode = MMAP_ALIASES.get(mmap_mode, mmap_mode)
    if mmap_mode not in MMAP_MODES:
        raise InvalidArgumentError(
            f"mmap_mode must be one of {MMAP_MODES} (or numpy's names for them: "
            f"{', '.join(MMAP_ALIASES)}), got {mmap_mode!r}"
        )
    mode = "r+" if mmap_mode == "w+" else mmap_mode
    policy = make_policy(safe, trusted)
    opts = _LoadOptions(
        policy,
        as_flag("verify", verify),
        resolve_threads(threads),
        keep_byte_order=_keeps_byte_order(ensure_native_byte_order, mmap_mode),
    )
    registry = get_registry()
    _progress.check(progress)
    if isinstance(filename, (str, os.PathLike)):
        path = _path_of(filename)
        target = _remote.locate(path, storage_options)
        if not isinstance(target, str):
            if mode is not None:
                warn_caller(
                    f"mmap_mode={mmap_mode!r} needs a local file; {path!r} is loaded into "
                    "memory instead",
                    UserWarning,
                )
            with _progress.track(progress, "load", path) as tracker, target.reading() as f:
                return _read_whole(tracker.reader(f), repr(path), registry, opts)
        with _progress.track(progress, "load", path) as tracker, _open_for(target, mode) as f:
            if mode is not None and not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                warn_caller(
                    f"{path!r} is not a regular file: it cannot be memory-mapped and is "
                    "loaded into memory instead",
                    UserWarning,
                )
                mode = None
            return _read_whole(
                tracker.reader(f),
                repr(path),
                registry,
                opts,
                path=target,
                mmap_mode=mode,
                mapfile=f if mode is not None else None,
            )
    _no_storage_options(storage_options, filename)
    if callable(getattr(filename, "read", None)):
        _check_binary(filename, "reading")
        if mode is not None:
            warn_caller(
                f"mmap_mode={mmap_mode!r} needs a file name; {describe(filename)} is "
                "loaded into memory instead",
                UserWarning,
            )
        name = describe(filename)
        # Every reader behind refuses a raw file's "nothing yet" instead of taking it
        # for the end of the file (which would call a good file damaged).
        source = refusing_nothing_yet(filename)
        if is_seekable(filename):
            start = _position(filename)
            opts = dataclasses.replace(opts, resume=True)
            try:
                with _progress.track(progress, "load", name) as tracker:
                    return _read_guarded(tracker.reader(source), name, registry, opts)
            except EmptyFileError:
                if not start:
                    raise
                # Not an empty file: a stream left at its end, as dump leaves one.
                raise EmptyFileError(
                    f"{name}: nothing to load at offset {start}: the stream is at its end "
                    "(after a dump into it, seek(0) before loading)"
                ) from None
        # Maybe a live stream (a socket whose sender waits for an answer): stop at the
        # object's end, never wait for the end of the input.
        check_resumable(filename, name)
        live = LiveLoad()
        opts = dataclasses.replace(opts, live=live)
        try:
            with _progress.track(progress, "load", name) as tracker:
                value = _read_guarded(tracker.reader(source), name, registry, opts)
        except EmptyFileError:
            raise EmptyFileError(
                f"{name}: nothing to load: the stream is empty or has ended"
            ) from None
        except CorruptFileError as exc:
            raise explain(filename, exc) from exc
        remember(filename, live)
        return value
    hint = ""
    if isinstance(filename, (bytes, bytearray, memoryview)):
        # Data or a path? Either reading could be wrong, so neither is guessed.
        hint = " (the bytes of a file: arraypickle.loads(data); a bytes path: os.fsdecode(path))"
    raise InvalidArgumentError(
        "load expects a filename (str or os.PathLike) or a readable binary file object, "
        f"{bytes(filename[:40]) if hint else filename!r} (type {type(filename).__name__}) "
        f"was given{hint}."
    )


def loads(
    data: bytes | bytearray | memoryview,
    *,
    safe: bool = False,
    trusted: Iterable[Any] | None = None,
    verify: bool = True,
    threads: int | None = None,
    progress: Progress = False,
    ensure_native_byte_order: bool | Literal["auto"] = "auto",
) -> Any:
    """Load an object from the bytes :func:`dumps` (or ``pickle.dumps``) made.

    Parameters:
        data: the bytes of one object, and nothing after it.
        safe: as for :func:`load`.
        trusted: as for :func:`load`.
        verify: as for :func:`load`.
        threads: as for :func:`load`.
        progress: as for :func:`load`.
        ensure_native_byte_order: as for :func:`load`.

    Returns:
        The object.

    Examples:

        >>> arraypickle.loads(arraypickle.dumps({"a": 1}))
        {'a': 1}
        >>> arraypickle.loads(pickle.dumps(os.system), safe=True)
        Traceback (most recent call last):
        arraypickle.UntrustedTypeError: <bytes>: refusing to load: ... posix.system ...
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError(f"loads expects bytes, got {type(data).__name__}")
    policy = make_policy(safe, trusted)
    opts = _LoadOptions(
        policy,
        as_flag("verify", verify),
        resolve_threads(threads),
        keep_byte_order=_keeps_byte_order(ensure_native_byte_order, None),
    )
    _progress.check(progress)
    with _progress.track(progress, "load", "<bytes>") as tracker:
        return _read_whole(tracker.reader(io.BytesIO(data)), "<bytes>", get_registry(), opts)


# -- internals --------------------------------------------------------------------


def _path_of(filename: str | os.PathLike[Any]) -> str:
    """The ``str`` path ``filename`` names (``os.fspath`` also gives bytes, refused)."""
    path = os.fspath(filename)
    if not isinstance(path, str):
        raise InvalidArgumentError(f"file names must be str or os.PathLike[str], got {filename!r}")
    return path


# The standard library's binary files: they say truthfully whether they read or write
# (a home-made io.RawIOBase may implement write and leave writable() at False).
_STDLIB_FILES = (
    io.FileIO,
    io.BufferedReader,
    io.BufferedWriter,
    io.BufferedRandom,
    socket.SocketIO,
)


def _check_binary(fileobj: Any, direction: str) -> None:
    """Refuse a text, closed or wrong-way file object before anything is written or read:
    io's own errors ("read", "write to closed file") do not say which file."""
    if isinstance(fileobj, io.TextIOBase):
        raise InvalidArgumentError(
            f"{describe(fileobj)} is a text file object: arraypickle needs a binary file "
            "object (open the file with 'rb' or 'wb', or use io.BytesIO)"
        )
    if getattr(fileobj, "closed", False) is True:
        raise InvalidArgumentError(f"{describe(fileobj)} is closed")
    if not isinstance(fileobj, _STDLIB_FILES):
        return
    able = fileobj.readable if direction == "reading" else fileobj.writable
    if not able():
        mode = getattr(fileobj, "mode", "?")
        raise FileModeError(f"{describe(fileobj)} is not open for {direction} (mode {mode!r})")
    raw = getattr(fileobj, "raw", fileobj)
    sock = getattr(raw, "_sock", None)  # socket.SocketIO's (makefile): no public accessor
    if (
        isinstance(raw, io.FileIO)
        and not os.get_blocking(raw.fileno())
        and not stat.S_ISREG(os.fstat(raw.fileno()).st_mode)  # where the flag does nothing
    ) or (sock is not None and getattr(sock, "gettimeout", lambda: None)() == 0.0):
        # Its reads and writes would do nothing and say so only by returning None:
        # a read would look like the end of a truncated file.
        raise InvalidArgumentError(
            f"{describe(fileobj)} is in non-blocking mode: {direction} it needs a blocking "
            "file (os.set_blocking(fd, True), or a socket's setblocking(True))"
        )


def _open_for(target: str, mmap_mode: str | None) -> Any:
    """``target`` open for the load: also for writing when its arrays are to be mapped
    with ``'r+'`` (the file read is the file mapped; a read-only one is read as
    ``'rb'``, and mapping it for writing fails as np.memmap's would)."""
    if mmap_mode == "r+":
        try:
            # Not a FIFO: opened for writing too, its reader would never see its end.
            if stat.S_ISREG(os.stat(target).st_mode):
                return open(target, "r+b")
        except OSError:
            pass  # read-only, or missing: the open below reports what it finds
    return open(target, "rb")


def _keeps_byte_order(ensure_native: Any, mmap_mode: str | None) -> bool:
    """Whether arrays keep their stored byte order, from joblib's ``ensure_native_byte_order``."""
    if isinstance(ensure_native, str) and ensure_native == "auto":
        return False  # native, except what is mapped (which never swaps)
    native = as_flag("ensure_native_byte_order", ensure_native, "'auto', True or False")
    if native and mmap_mode is not None:
        raise InvalidArgumentError(
            f"ensure_native_byte_order=True cannot be met with mmap_mode={mmap_mode!r}: a "
            "memory-mapped array stays in its stored byte order (use 'auto' or False)"
        )
    return not native


def _protocol(protocol: int | None) -> int:
    if protocol is None:
        return fmt.DEFAULT_PROTOCOL
    if isinstance(protocol, bool) or not isinstance(protocol, int):
        raise InvalidArgumentError(f"protocol must be an int, got {protocol!r}")
    if protocol < 0:
        return pickle.HIGHEST_PROTOCOL
    if protocol > pickle.HIGHEST_PROTOCOL:
        raise InvalidArgumentError(
            f"pickle protocol {protocol} is not supported (max {pickle.HIGHEST_PROTOCOL})"
        )
    return protocol


def _no_storage_options(storage_options: Any, fileobj: Any) -> None:
    if storage_options:
        raise InvalidArgumentError(
            "storage_options apply to URLs (s3://..., gcs://...), not to file objects "
            f"such as {describe(fileobj)}"
        )


def _write(
    value: Any,
    out: Any,
    codec: Any,
    level: int,
    protocol: int,
    registry: Registry,
    threads: int = 1,
) -> None:
    if codec is None:
        stream = out
    elif getattr(codec, "parallel", False):
        stream = codec.open_writer(out, level, threads=threads)
    else:
        stream = codec.open_writer(out, level)
    try:
        writer = ContainerWriter(stream, hash_thread=codec is None)
        try:
            pickler = Pickler(writer, protocol, registry.wrapper_index)
            try:
                pickler.dump(value)
            except (AttributeError, pickle.PicklingError, TypeError) as exc:
                if isinstance(exc, ArrayPickleError) or not refused_by_pickling(exc):
                    raise
                raise pickler.refusal(exc) from exc
            writer.finish()
        finally:
            writer.close()
    except BaseException:
        if codec is not None:
            abandon(stream)
        raise
    if codec is not None:
        stream.close()


@dataclasses.dataclass(frozen=True)
class _LoadOptions:
    """What a load was asked for, carried through every layer of a file."""

    policy: Policy | None = None
    verify: bool = True
    threads: int = 1
    #: Set for a file object that cannot seek: the load stops at the object's end.
    live: LiveLoad | None = None
    #: Set for a file object that can seek: a compressed object's load leaves it right
    #: after the codec stream holding the object, as an uncompressed one leaves it
    #: after the END record (objects dumped back to back load one by one).
    resume: bool = False
    #: ``ensure_native_byte_order=False``: arrays stay in their stored byte order.
    keep_byte_order: bool = False

    def unpickler_factory(self) -> Any:
        return functools.partial(_new_unpickler, policy=self.policy)

    @property
    def guard(self) -> bool:
        """Walk a plain pickle's opcodes for damaged memo indices (safe loading's scan
        checks them already)."""
        return self.verify and self.policy is None


def _position(fileobj: Any) -> int | None:
    try:
        return int(fileobj.tell())
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _read_whole(
    stream: Any, name: str, registry: Registry, opts: _LoadOptions, **kwargs: Any
) -> Any:
    """Read a whole file (or ``bytes``): it holds one object and nothing after it."""
    value = _read_guarded(stream, name, registry, opts, **kwargs)
    if stream.read(1):
        raise data_follows(name, stream.tell() - 1)
    return value


def _read_guarded(
    stream: Any, name: str, registry: Registry, opts: _LoadOptions, **kwargs: Any
) -> Any:
    """``_read``; under safe loading, failures of allow-listed constructors on the
    file's arguments (TypeError, ValueError...) surface as :class:`CorruptFileError`.

    Other exceptions than arraypickle's own propagate as they are (a class's own
    ``__setstate__``, a missing module, the caller's stream), with a note naming the
    file, which their messages do not."""
    if opts.policy is not None:
        opts.policy.file = name
    token = KEEP_BYTE_ORDER.set(opts.keep_byte_order)
    try:
        return _read(stream, name, registry, opts, **kwargs)
    except ArrayPickleError:
        raise
    except Exception as exc:
        # Under safe loading, what the file's arguments make fail is damage; MemoryError
        # and a trusted class gone from its module raise as they would without it.
        if opts.policy is not None and not isinstance(exc, MemoryError) and not failed_lookup(exc):
            raise CorruptFileError(
                f"{name}: the file's objects could not be rebuilt under safe loading: {exc!r}"
            ) from exc
        with contextlib.suppress(Exception):  # a class of the file's may refuse attributes
            exc.add_note(f"(raised while arraypickle loaded {name})")
        raise
    finally:
        KEEP_BYTE_ORDER.reset(token)


def _read(
    stream: Any,
    name: str,
    registry: Registry,
    opts: _LoadOptions,
    *,
    path: str | None = None,
    mmap_mode: str | None = None,
    mapfile: Any = None,
    inner: bool = False,
    piece: int = _PIECE,
) -> Any:
    """Read one object from ``stream``; ``mapfile``: the open file at ``path``, whose
    arrays ``mmap_mode`` maps."""
    found = detect(stream, name, registry, inner=inner)
    stream = found.stream
    if found.kind == JOBLIB_ZF:  # joblib 0.8.4-0.9's own zlib framing
        return _joblib.load_zf(
            stream,
            name,
            new_unpickler=opts.unpickler_factory(),
            path=path,
            mmap_mode=mmap_mode,
            live=opts.live,
            policy=opts.policy,
            guard=opts.guard,
        )
    if found.kind == CONTAINER:
        reader = ContainerReader(
            stream,
            name,
            wrappers=registry.wrappers,
            size=remaining_size(stream),
            mmap=MmapTarget(path, mmap_mode, mapfile) if path and mmap_mode else None,
            piece=piece,
            policy=opts.policy,
            verify=opts.verify,
            threads=opts.threads,
        )
        return reader.load()
    if found.kind == COMPRESSED:
        if mmap_mode is not None:
            warn_caller(
                f"{name} is compressed with {found.codec.name}: it cannot be memory-mapped "
                "and is loaded into memory instead",
                UserWarning,
            )
        return _read_compressed(stream, name, found.codec, registry, opts)
    # From a file object holding several objects, where this one was to start.
    check_unrecognised(found.head, name, 0 if inner else _position(stream) or 0)
    # A pickle, possibly joblib's (arrays after their wrappers; warns for mmap_mode
    # when none could be mapped). Under safe loading it is scanned first.
    close = None
    if opts.policy is not None:
        stream, close = checked_plain(stream, name, opts.policy)
    try:
        return _joblib.load_pickle(
            stream,
            name,
            new_unpickler=opts.unpickler_factory(),
            path=path,
            mmap_mode=mmap_mode,
            mapfile=mapfile,
            size=remaining_size(stream),
            piece=piece,
            inner=inner,
            live=opts.live is not None,
            policy=opts.policy,
            guard=opts.guard,
        )
    finally:
        if close is not None:
            close()


def _read_compressed(
    stream: Any, name: str, codec: Any, registry: Registry, opts: _LoadOptions
) -> Any:
    if opts.live is not None:
        # Reads return what has arrived: a read of a fixed size past the stream's last
        # bytes would wait for a sender that waits for us.
        stream = ShortReads(stream)
    reader = open_decoder(stream, name, codec, opts.threads)
    guarded = Guarded(reader, name, codec.name)
    try:
        value = _read(guarded, name, registry, opts, inner=True, piece=_piece(reader))
        if opts.live is not None:
            finish_live(guarded, reader, opts.live)
        elif opts.resume and (overread := finish_seekable(guarded, reader)) is not None:
            stream.seek(-overread, os.SEEK_CUR)
        elif guarded.read(1):
            raise CorruptFileError(
                f"{name}: data follows the object in the {codec.name} stream "
                f"(decompressed offset {guarded.offset - 1})"
            )
    except BaseException:
        if reader is not stream:
            with contextlib.suppress(Exception):  # the first error says more
                reader.close()
        raise
    if reader is not stream:  # a minimal codec may hand back the file itself
        guarded.close_reader()
    return value


def _piece(reader: Any) -> int:
    """The size of the reads of buffer payloads from a codec's reader: 2 MiB, or the
    ``read_size`` at which the reader decodes whole frames in place (up to 64 MiB)."""
    hint = getattr(reader, "read_size", None)
    if isinstance(hint, int) and not isinstance(hint, bool) and hint > _PIECE:
        return min(hint, _MAX_CODEC_PIECE)
    return _PIECE


def _new_unpickler(
    file: Any, bindings: Any, policy: Policy | None = None, **kwargs: Any
) -> Unpickler:
    """Every unpickler of a pickle (or joblib) load, nested ones included, comes from here,
    so the caller's safe-loading policy reaches them all (``kwargs``: ``encoding``)."""
    return Unpickler(file, rebuild=fmt.rebuild, bindings=bindings, policy=policy, **kwargs)
