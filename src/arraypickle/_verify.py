"""Checking a whole file without unpickling it (what ``arraypickle verify`` runs).

Every record of every container in the file is checked: record headers (CRC-32),
zero padding, declared sizes, the xxh3-64 checksum of every payload (buffers read in
bounded pieces and dropped), the pickle opcodes parsed but never executed, and the END
record's counts. A compressed file is decompressed as a stream, so the codec's own
checks (gzip's CRC-32, xz's CRC-64, bzip2's block CRCs, zlib's Adler-32) run too, to
the end of the stream. Nothing the file names is imported or called.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

from . import _format as fmt
from . import _remote
from ._damage import check_unrecognised, could_start_pickle
from ._detect import COMPRESSED, CONTAINER, JOBLIB_ZF, decoded, detect
from ._errors import CorruptFileError, describe
from ._plugins import Registry, get_registry
from ._reader import ContainerReader
from ._streams import is_seekable, remaining_size, sniff

# Reads from a codec's reader are capped at this (its own buffers stay bounded); buffers
# are hashed through a reused scratch buffer of _reader.HASH_PIECE bytes.
SCAN_PIECE = 4 << 20


@dataclass
class Report:
    """What :func:`verify` found in a sound file."""

    file: str
    codec: str | None = None  # the codec whose stream wraps the container, if any
    containers: int = 0  # containers back to back (several only in uncompressed files)
    records: int = 0  # PICKLE and BUFFER records, all containers together
    buffers: int = 0
    buffer_bytes: int = 0
    container_bytes: int = 0  # the uncompressed size
    # Buffers whose checksums could not bind: the file was memory-mapped for writing
    # ('r+') since it was written (``arraypickle convert`` seals it again).
    unverified_buffer_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"ok": True, **asdict(self)}


def verify(
    file: str | os.PathLike[str] | BinaryIO,
    registry: Registry | None = None,
    *,
    name: str | None = None,
) -> Report:
    """Check every byte of an arraypickle file without unpickling it.

    Parameters:
        file: a path, a URL (``s3://...``, through fsspec as for ``load``) or a
            readable binary file object (read from its position to its end).
        registry: the codecs to recognise (default: the installed ones).
        name: what the report and messages call a file object (default: its name).

    Returns:
        A :class:`Report` of what the file holds.

    Raises:
        CorruptFileError: the file is damaged or truncated (the message names the
            record or offset), or is not an arraypickle file (a plain pickle carries
            no checksums to verify).
        UnknownCodecError: the file is compressed by a codec that is not installed.

    Example::

        >>> arraypickle._verify.verify("model.pkl").buffers
        3
    """
    registry = registry or get_registry()
    if isinstance(file, (str, os.PathLike)):
        path = os.fspath(file)
        with _remote.reading(path) as f:
            return _verify_stream(f, repr(path), Report(path), registry)
    name = describe(file) if name is None else name
    return _verify_stream(file, name, Report(name), registry)


def _verify_stream(stream: Any, name: str, report: Report, registry: Registry) -> Report:
    found = detect(stream, name, registry)
    if found.kind == CONTAINER:
        _scan_containers(found.stream, name, report)
        return report
    if found.kind == COMPRESSED:
        report.codec = found.codec.name
        _scan_compressed(found.stream, name, found.codec, report, registry)
        return report
    if found.kind == JOBLIB_ZF:
        raise CorruptFileError(
            f"{name}: not an arraypickle file (a joblib 0.8.4-0.9 zlib file, which carries "
            "no checksums to verify)"
        )
    check_unrecognised(found.head, name)
    raise CorruptFileError(
        f"{name}: not an arraypickle file but a plain pickle (as joblib writes), "
        "which carries no checksums to verify"
    )


def _scan_one(stream: Any, name: str, report: Report) -> int:
    reader = ContainerReader(
        stream, name, wrappers={}, size=remaining_size(stream), piece=SCAN_PIECE
    )
    records, buffers = reader.scan()
    report.containers += 1
    report.records += records
    report.buffers += buffers
    report.buffer_bytes += reader.buffer_bytes
    if reader.buffers_unverifiable:
        report.unverified_buffer_bytes += reader.buffer_bytes
    report.container_bytes += reader.offset
    return reader.offset


def _scan_containers(stream: Any, name: str, report: Report) -> None:
    """Containers back to back up to the end of ``stream`` (what stream dumps leave)."""
    start = _scan_one(stream, name, report)
    while True:
        head, stream = sniff(stream, [fmt.MAGIC])
        if not head:
            return
        if not head.startswith(fmt.MAGIC):
            raise CorruptFileError(
                f"{name}: the data after the container ending at byte {start} is not an "
                f"arraypickle container (first bytes {head[:8].hex(' ')})"
            )
        label = f"{name} (container {report.containers + 1} at byte {start})"
        start += _scan_one(stream, label, report)


def _scan_compressed(
    stream: Any, name: str, codec: Any, report: Report, registry: Registry
) -> None:
    with decoded(stream, name, codec) as guarded:
        found = detect(guarded, name, registry, inner=True)
        if found.kind != CONTAINER:
            what = (
                " but a plain pickle (as joblib writes), which carries no checksums to verify"
                if could_start_pickle(found.head)
                else f" (first bytes {found.head[:8].hex(' ')})"
            )
            raise CorruptFileError(
                f"{name}: the {codec.name} stream does not hold an arraypickle container{what}"
            )
        _scan_one(found.stream, name, report)
        # Read on to the end of the codec stream: its own checks run there.
        if guarded.read(1):
            raise CorruptFileError(
                f"{name}: data follows the container in the {codec.name} stream "
                f"(decompressed offset {guarded.offset - 1})"
            )
    if is_seekable(stream) and stream.read(1):
        raise CorruptFileError(f"{name}: data follows the {codec.name} stream")
