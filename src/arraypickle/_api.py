"""``dump``, ``load``, ``dumps``, ``loads``: joblib's call shapes over the container."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import warnings
from typing import Any, BinaryIO

from . import _format as fmt
from ._atomic import replacing
from ._compress import resolve
from ._damage import check_unrecognised, unpickler_failure
from ._errors import CorruptFileError, UnknownCodecError, describe
from ._pickler import Pickler
from ._plugins import KnownCodec, Registry, get_registry
from ._reader import ContainerReader, MmapTarget, Unpickler
from ._streams import Guarded, remaining_size, sniff
from ._writer import ContainerWriter

MMAP_MODES = (None, "r", "r+", "w+", "c")

# readinto pieces (when not verifying: verified buffers go in smaller pieces, see
# _reader.HASH_PIECE): from a file they bound nothing; from a decompressing reader they
# bound the reader's own buffers.
_FILE_PIECE = 16 << 20
_CODEC_PIECE = 4 << 20


def dump(
    value: Any,
    filename: str | os.PathLike[str] | BinaryIO,
    compress: Any = 0,
    protocol: int | None = None,
    *,
    fsync: bool = False,
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

    Returns:
        ``[str(filename)]`` for a path, ``None`` for a file object.

    Example::

        >>> import numpy as np, arraypickle
        >>> arraypickle.dump({"w": np.ones((1000, 1000))}, "model.pkl")
        ['model.pkl']
        >>> arraypickle.dump([1, 2], "small.pkl.gz")  # gzip, from the extension
        ['small.pkl.gz']
        >>> arraypickle.dump([1, 2], "durable.pkl", fsync=True)
        ['durable.pkl']
    """
    registry = get_registry()
    proto = _protocol(protocol)
    if isinstance(filename, (str, os.PathLike)):
        path = os.fspath(filename)
        if not isinstance(path, str):
            raise ValueError(f"file names must be str or os.PathLike[str], got {filename!r}")
        codec, level = resolve(compress, path, registry)
        with replacing(path, fsync=fsync) as out:
            _write(value, out, codec, level, proto, registry)
        return [str(filename)]
    if callable(getattr(filename, "write", None)):
        codec, level = resolve(compress, None, registry)
        _write(value, filename, codec, level, proto, registry)
        return None
    raise ValueError(
        "Second argument should be a filename (str or os.PathLike) or a writable binary "
        f"file object, {filename!r} (type {type(filename).__name__}) was given."
    )


def dumps(value: Any, compress: Any = 0, protocol: int | None = None) -> bytes:
    """Persist ``value`` into ``bytes``; the arguments are those of :func:`dump`.

    Example::

        >>> blob = arraypickle.dumps(np.arange(10), compress="gzip")
        >>> arraypickle.loads(blob)[-1]
        9
    """
    out = io.BytesIO()
    dump(value, out, compress=compress, protocol=protocol)
    return out.getvalue()


def load(
    filename: str | os.PathLike[str] | BinaryIO,
    mmap_mode: str | None = None,
    *,
    verify: bool = True,
) -> Any:
    """Load an object saved by :func:`dump` (or by ``pickle``, or compressed by a tool).

    The format is detected from the first bytes, never from the name: an arraypickle
    container, a container (or pickle) inside any installed codec's stream, or a
    plain pickle stream.

    Parameters:
        filename: a path or a readable binary file object, seekable or not. From a
            stream, the load stops right after the object, so objects dumped back
            to back load one by one.
        mmap_mode: ``None``, ``'r'``, ``'r+'``, ``'w+'`` (same as ``'r+'``) or ``'c'``.
            For an uncompressed file given by path, every non-object array comes back
            as an ``np.memmap`` of the file in that mode (in its stored byte order).
            For compressed files and file objects it is ignored with a
            ``UserWarning``.
        verify: check the xxh3-64 checksum of every array buffer as it is read (record
            headers and pickle opcodes are always checked). ``False`` skips the buffer
            checksums; memory-mapped buffers are never hashed (that would read them).

    Returns:
        The object. Arrays are native-endian, writable, 64-byte aligned.

    Raises:
        CorruptFileError: the file is truncated, damaged or not a known format; the
            message names the file and the record or offset at fault. A file given
            by path must hold one object and nothing after it.
        UnknownCodecError: the file is compressed by a codec that is not installed.

    Example::

        >>> model = arraypickle.load("model.pkl")
        >>> mapped = arraypickle.load("model.pkl", mmap_mode="r")
    """
    if mmap_mode not in MMAP_MODES:
        raise ValueError(f"mmap_mode must be one of {MMAP_MODES}, got {mmap_mode!r}")
    mode = "r+" if mmap_mode == "w+" else mmap_mode
    registry = get_registry()
    if isinstance(filename, (str, os.PathLike)):
        path = os.fspath(filename)
        if not isinstance(path, str):
            raise ValueError(f"file names must be str or os.PathLike[str], got {filename!r}")
        with open(path, "rb") as f:
            value = _read(f, repr(path), registry, path=path, mmap_mode=mode, verify=verify)
            _check_end(f, repr(path))
            return value
    if callable(getattr(filename, "read", None)):
        if mode is not None:
            warnings.warn(
                f"mmap_mode={mmap_mode!r} needs a file name; {describe(filename)} is "
                "loaded into memory instead",
                UserWarning,
                stacklevel=2,
            )
        return _read(filename, describe(filename), registry, verify=verify)
    raise ValueError(
        "load expects a filename (str or os.PathLike) or a readable binary file object, "
        f"{filename!r} (type {type(filename).__name__}) was given."
    )


def loads(data: bytes | bytearray | memoryview, *, verify: bool = True) -> Any:
    """Load an object from the bytes :func:`dumps` (or ``pickle.dumps``) made.

    ``data`` must hold one object and nothing after it; ``verify`` is that of
    :func:`load`.

    Example::

        >>> arraypickle.loads(arraypickle.dumps({"a": 1}))
        {'a': 1}
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"loads expects bytes, got {type(data).__name__}")
    stream = io.BytesIO(data)
    value = _read(stream, "<bytes>", get_registry(), verify=verify)
    _check_end(stream, "<bytes>")
    return value


# -- internals --------------------------------------------------------------------


def _protocol(protocol: int | None) -> int:
    if protocol is None:
        return fmt.DEFAULT_PROTOCOL
    if isinstance(protocol, bool) or not isinstance(protocol, int):
        raise ValueError(f"protocol must be an int, got {protocol!r}")
    if protocol < 0:
        return pickle.HIGHEST_PROTOCOL
    if protocol > pickle.HIGHEST_PROTOCOL:
        raise ValueError(
            f"pickle protocol {protocol} is not supported (max {pickle.HIGHEST_PROTOCOL})"
        )
    return protocol


def _write(value: Any, out: Any, codec: Any, level: int, protocol: int, registry: Registry) -> None:
    stream = codec.open_writer(out, level) if codec is not None else out
    try:
        writer = ContainerWriter(stream)
        Pickler(writer, protocol, registry.wrapper_index).dump(value)
        writer.finish()
    except BaseException:
        if codec is not None:
            with contextlib.suppress(Exception):  # the first error is the one to report
                stream.close()
        raise
    if codec is not None:
        stream.close()


def _read(
    stream: Any,
    name: str,
    registry: Registry,
    *,
    path: str | None = None,
    mmap_mode: str | None = None,
    inner: bool = False,
    verify: bool = True,
) -> Any:
    magics = registry.magics()
    head, stream = sniff(stream, [fmt.MAGIC, *magics])
    if head.startswith(fmt.MAGIC):
        reader = ContainerReader(
            stream,
            name,
            wrappers=registry.wrappers,
            size=remaining_size(stream),
            mmap=MmapTarget(path, mmap_mode) if path and mmap_mode else None,
            piece=_CODEC_PIECE if inner else _FILE_PIECE,
            verify=verify,
        )
        return reader.load()
    for magic, codec in magics.items():
        if head.startswith(magic):
            if isinstance(codec, tuple):
                codec_name, known = codec
                raise UnknownCodecError(_missing_codec(name, codec_name, known))
            if inner:
                raise CorruptFileError(f"{name}: compressed data nested in compressed data")
            if mmap_mode is not None:
                warnings.warn(
                    f"{name} is compressed with {codec.name}: it cannot be memory-mapped "
                    "and is loaded into memory instead",
                    UserWarning,
                    stacklevel=3,
                )
            return _read_compressed(stream, name, codec, registry, verify)
    if not head:
        raise CorruptFileError(f"{name}: the file is empty")
    check_unrecognised(head, name)
    if mmap_mode is not None:
        warnings.warn(
            f"{name} is a plain pickle: its arrays are not stored apart and cannot be "
            "memory-mapped; it is loaded into memory instead",
            UserWarning,
            stacklevel=3,
        )
    return _unpickle_plain(stream, name)


def _read_compressed(stream: Any, name: str, codec: Any, registry: Registry, verify: bool) -> Any:
    reader = codec.open_reader(stream)
    try:
        guarded = Guarded(reader, name, codec.name)
        value = _read(guarded, name, registry, inner=True, verify=verify)
        if guarded.read(1):
            raise CorruptFileError(
                f"{name}: data follows the object in the {codec.name} stream "
                f"(decompressed offset {guarded.offset - 1})"
            )
    finally:
        reader.close()
    return value


def _unpickle_plain(stream: Any, name: str) -> Any:
    try:
        return Unpickler(stream, rebuild=fmt.rebuild).load()
    except Exception as exc:
        error = unpickler_failure(
            exc, name, "not an arraypickle container (no magic at offset 0), and "
        )
        if error is None:
            raise
        raise error from exc


def _check_end(stream: Any, name: str) -> None:
    """A whole file or ``bytes`` holds one object: nothing may follow it."""
    if stream.read(1):
        raise CorruptFileError(
            f"{name}: data follows the object at offset {stream.tell() - 1} (appended or "
            "damaged data; objects written back to back load one by one from an open file)"
        )


def _missing_codec(name: str, codec_name: str, known: KnownCodec) -> str:
    return (
        f"{name} is compressed with {codec_name}, which is not installed; "
        f"install it with: pip install {known.distribution}"
    )
