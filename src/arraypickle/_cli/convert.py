"""``arraypickle convert SRC DST``: to arraypickle from joblib or pickle, or re-compress.

Two routes:

* SRC is an arraypickle container (compressed or not): its records are copied into
  DST's codec one by one, checksums verified, in bounded memory, without unpickling
  anything (:mod:`.._transcode`). ``--safe`` then only checks the globals it names.
* anything else (joblib files, plain pickles): the object is loaded (``safe=True``
  with ``--safe``) and dumped: memory is the data plus a bounded overhead.

DST is written atomically (a temporary file renamed over it), as ``dump`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import stat
import sys
from collections.abc import Iterator
from typing import Any

from .. import _progress, _remote
from .._api import dump, load
from .._atomic import replacing
from .._compress import resolve
from .._detect import COMPRESSED, CONTAINER, decoded, detect
from .._errors import ArrayPickleError, UnknownCodecError
from .._plugins import get_registry
from .._safe import Policy, _scan_any
from .._transcode import copy_container
from .._writer import abandon
from . import EXIT_BAD_FILE, EXIT_USAGE, CliError

NONE_SPECS = ("none", "0", "false", "no")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert joblib/pickle files to arraypickle, or re-compress arraypickle files",
        description=(
            "Write SRC (a joblib file, a pickle or an arraypickle file) to DST in arraypickle's "
            "format. arraypickle files are re-compressed record by record without being "
            "unpickled; other files are loaded and dumped."
        ),
    )
    parser.add_argument("src", metavar="SRC", help="the file to convert (a path or a URL)")
    parser.add_argument("dst", metavar="DST", help="the file to write (a path or a URL)")
    parser.add_argument(
        "--compress",
        metavar="SPEC",
        help=(
            "none | LEVEL (0-9: zlib, or DST's extension's codec, at that level) | "
            "CODEC | CODEC:LEVEL; default: from DST's extension, else none"
        ),
    )
    parser.add_argument(
        "--safe",
        action="store_true",
        help="refuse SRC if it names globals outside the safe-loading allow-list",
    )
    parser.add_argument(
        "--trusted",
        metavar="NAME",
        action="append",
        default=None,
        help="a 'module.qualname' to allow besides the allow-list (repeatable; implies --safe)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars for files over 100 MiB (default: when stderr is a terminal)",
    )
    parser.set_defaults(func=run)


def parse_compress(spec: str | None) -> Any:
    """The ``compress`` argument of ``dump`` that ``--compress SPEC`` stands for.

    ``none`` is ``(codec, 0)`` so that DST's extension cannot bring a codec back;
    ``CODEC`` is that codec at its default level, whatever DST's extension says.

    Examples:

        >>> parse_compress("lz4:3"), parse_compress("9"), parse_compress(None)
        (('lz4', 3), 9, 0)
    """
    if spec is None:
        return 0
    text = spec.strip().lower()
    if text in NONE_SPECS:
        return ("zlib", 0)
    if text.isdigit():
        level = int(text)
        if not 0 <= level <= 9:
            raise CliError(f"--compress {spec!r}: a level is 0 to 9", EXIT_USAGE)
        return level
    name, sep, level_text = text.partition(":")
    registry = get_registry()
    try:
        codec = registry.codec(name)
    except UnknownCodecError as exc:
        raise CliError(f"--compress {spec!r}: {exc}", EXIT_USAGE) from None
    if not sep:
        from ..codec import default_level

        return (name, default_level(codec))
    if not level_text.isdigit() or not 0 <= int(level_text) <= 9:
        raise CliError(f"--compress {spec!r}: the level after ':' is 0 to 9", EXIT_USAGE)
    return (name, int(level_text))


def run(args: argparse.Namespace) -> int:
    if args.dst == "-":
        # Not a file named '-' in the current directory, which is what open() would make.
        raise CliError(
            "DST '-': convert writes a file (replaced only once complete), not stdout",
            EXIT_USAGE,
        )
    compress = parse_compress(args.compress)
    registry = get_registry()
    try:
        codec, level = resolve(compress, args.dst, registry)
    except (UnknownCodecError, ValueError) as exc:
        raise CliError(f"DST {args.dst!r}: {exc}", EXIT_USAGE) from None
    if isinstance(compress, tuple) and compress[1]:
        by_extension = registry.codec_for_path(args.dst)
        if by_extension is not None and by_extension is not codec:
            print(
                f"arraypickle convert: note: writing {codec.name} as asked, although "
                f"{args.dst!r} ends like a {by_extension.name} file",
                file=sys.stderr,
            )
    safe = args.safe or args.trusted is not None
    if safe:
        Policy(args.trusted)  # a malformed name is a usage error (2), whatever SRC is
    progress = args.progress if args.progress is not None else _isatty(sys.stderr)
    _check_rereadable(args.src)
    try:
        if _is_container(args.src, registry):
            if safe:
                _check_safe(args.src, args.trusted, registry)
            _recompress(args.src, args.dst, codec, level, progress)
        else:
            _repickle(args.src, args.dst, compress, safe, args.trusted, progress)
    except OSError as exc:
        if exc.strerror and _about_output(exc, args.dst):
            raise CliError(f"cannot write {args.dst!r}: {exc.strerror}") from exc
        raise
    except UnknownCodecError as exc:  # SRC's codec: DST's was checked above
        raise CliError(str(exc), EXIT_BAD_FILE) from exc
    return 0


def _check_rereadable(src: str) -> None:
    """Refuse a pipe, a FIFO or a device as SRC: it is read twice (its first bytes tell
    which route it takes), and a second open would wait or find nothing."""
    if src == "-":  # what info and verify read as stdin (a file named '-' is ./-)
        raise CliError(
            "SRC '-': convert reads SRC more than once, so not from stdin "
            "(save the stream to a file first; a file named '-' is ./-)",
            EXIT_USAGE,
        )
    target = _remote.locate(src, None)
    if not isinstance(target, str):
        return
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return  # the open reports it, naming SRC
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise CliError(
            f"{src!r} is not a regular file: convert reads SRC more than once "
            "(save the stream to a file first)"
        )


def _about_output(exc: OSError, dst: str) -> bool:
    """Whether ``exc`` is about DST or the temporary file written beside it."""
    target = os.path.abspath(dst)
    for name in (exc.filename, exc.filename2):
        if not isinstance(name, str):
            continue
        path = os.path.abspath(name)
        if path == target:
            return True
        same_dir = os.path.dirname(path) == os.path.dirname(target)
        if same_dir and os.path.basename(path).startswith(f".{os.path.basename(target)}."):
            return True
    return False


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# -- opening ------------------------------------------------------------------------


@contextlib.contextmanager
def _open_target(path: str) -> Iterator[Any]:
    target = _remote.locate(path, None)
    opener = replacing(target) if isinstance(target, str) else target.writing()
    with opener as out:
        yield out


@contextlib.contextmanager
def _decompressed(f: Any, name: str, registry: Any) -> Iterator[tuple[Any, bool]]:
    """The stream at ``f`` with its codec (if any) undone, and whether it is a container."""
    found = detect(f, name, registry)
    if found.kind != COMPRESSED:
        yield found.stream, found.kind == CONTAINER
        return
    with decoded(found.stream, name, found.codec) as stream:
        inner = detect(stream, name, registry, inner=True)
        yield inner.stream, inner.kind == CONTAINER


def _is_container(path: str, registry: Any) -> bool:
    """Whether ``path`` holds an arraypickle container (inside a codec or not)."""
    with _remote.reading(path) as f, _decompressed(f, repr(path), registry) as (_, container):
        return container


# -- the two routes -----------------------------------------------------------------


def _check_safe(src: str, trusted: Any, registry: Any) -> None:
    """Refuse ``src`` as ``load(src, safe=True, trusted=trusted)`` would, before writing."""
    policy = Policy(trusted)
    with _remote.reading(src) as f:
        policy.check(_scan_any(f, repr(src), registry, policy), repr(src))


def _recompress(src: str, dst: str, codec: Any, level: int, progress: bool) -> None:
    registry = get_registry()
    name = repr(src)
    itemsizes = _itemsizes(src, codec, level)
    with (
        _progress.track(progress, "convert", src) as tracker,
        _remote.reading(src) as raw,
        _decompressed(tracker.reader(raw), name, registry) as (stream, _),
        _open_target(dst) as out,
    ):
        writer = codec.open_writer(out, level) if codec is not None else out
        try:
            copy_container(stream, writer, name, itemsizes)
            if stream.read(1):  # as load refuses it: a second object would be dropped
                from .._errors import CorruptFileError

                raise CorruptFileError(f"{name}: data follows the container in its stream")
        except BaseException:
            if codec is not None:
                abandon(writer)
            raise
        if codec is not None:
            writer.close()


def _itemsizes(src: str, codec: Any, level: int) -> dict[int, int]:
    """Element sizes of the buffers, for an array-aware destination codec (else {})."""
    if codec is None:
        return {}
    probe = codec.open_writer(io.BytesIO(), level)
    aware = callable(getattr(probe, "write_array", None))
    probe.close()
    if not aware:
        return {}
    from .._inspect import inspect_path

    report = inspect_path(src)
    return {
        a.buffer: a.dtype.itemsize
        for a in report.arrays
        if a.buffer is not None and a.dtype is not None and a.dtype.itemsize
    }


def _repickle(src: str, dst: str, compress: Any, safe: bool, trusted: Any, progress: bool) -> None:
    try:
        value = load(src, safe=safe, trusted=trusted, progress=progress)
    except (ArrayPickleError, OSError):
        raise
    except Exception as exc:
        # Loading runs the file's own reconstruction code: modules it needs may be
        # missing here, its classes may have changed.
        raise CliError(
            f"{src!r} cannot be loaded here: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    try:
        dump(value, dst, compress=compress, progress=progress)
    except (ArrayPickleError, OSError):
        raise
    except Exception as exc:
        raise CliError(
            f"{dst!r}: the object loaded from {src!r} cannot be written: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""
