"""``arraypickle info FILE``: format, sizes, arrays and globals, executing nothing."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._errors import UnknownCodecError
from .._inspect import ArrayEntry, Report, inspect_path, inspect_stream
from . import EXIT_BAD_FILE, CliError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe a file: format, sizes, arrays, globals (runs nothing in it)",
        description=(
            "Describe an arraypickle, pickle or joblib file: its format and compression, "
            "its sizes, each array (path in the object, class, dtype, shape, order, size, "
            "offset) and the globals it would import, marking those safe loading refuses. "
            "Nothing in the file is executed or imported."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the file (a path, a URL, or - for stdin)")
    parser.add_argument("--json", action="store_true", help="print JSON (docs/cli.md)")
    parser.add_argument(
        "--trusted",
        metavar="NAME",
        action="append",
        default=None,
        help="a 'module.qualname' to count as trusted (repeatable)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.file == "-":
            report = inspect_stream(sys.stdin.buffer, "<stdin>", None, None, args.trusted)
        else:
            report = inspect_path(args.file, args.trusted)
    except UnknownCodecError as exc:  # the file's codec, not one named by the user
        raise CliError(str(exc), EXIT_BAD_FILE) from exc
    text = json.dumps(report.to_json(), indent=2) if args.json else render(report)
    # Names from the file may hold lone surrogates: show them escaped, never fail.
    print(text.encode("utf-8", "backslashreplace").decode("utf-8", "replace"))
    return 0


# -- the human form -------------------------------------------------------------------


def render(report: Report) -> str:
    """The report as text: a summary, a table of arrays, the list of globals."""
    lines = [
        f"file      {report.file}",
        f"format    {report.description}",
        f"size      {_sizes(report)}",
    ]
    if report.trailing_bytes:
        lines.append(
            f"note      {human(report.trailing_bytes)} follow the object: load(path) refuses "
            "the file (read from a file object, objects written back to back load one by one)"
        )
    lines.append("")
    arrays = report.arrays
    if arrays:
        lines.append(f"{len(arrays)} array{'s' if len(arrays) != 1 else ''}")
        lines.extend(_table(arrays))
        if report.compression:
            lines.append("  (offsets are in the decompressed stream)")
    else:
        lines.append("no arrays")
    lines.append("")
    untrusted = report.untrusted
    head = f"{len(report.globals)} global{'s' if len(report.globals) != 1 else ''} imported"
    if untrusted:
        head += f"; {len(untrusted)} untrusted (load(..., safe=True) refuses the file)"
    elif report.globals:
        head += "; all allowed under safe loading"
    if any(a.file and (a.dtype is None or a.dtype.hasobject) for a in report.arrays):
        # Their pickles are read by the load (and checked then), not by this report.
        head += " (not counting those of object arrays in companion files)"
    lines.append(head)
    width = max((len(name) for name, _ in report.globals), default=0)
    for name, bad in report.globals:
        lines.append(f"  {name:<{width}}  untrusted" if bad else f"  {name}")
    return "\n".join(map(_printable, lines))


def _printable(line: str) -> str:
    """``line`` with what a terminal would act on escaped: names come from the file,
    and a newline or an escape sequence in one could forge lines of the report."""
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in line)


def _sizes(report: Report) -> str:
    parts = []
    if report.file_size is not None:
        parts.append(f"{human(report.file_size)} file")
    if report.stream_size is not None and (
        report.compression or report.stream_size != report.file_size
    ):
        what = "decompressed" if report.compression else "object stream"
        parts.append(f"{human(report.stream_size)} {what}")
    n = len(report.arrays)
    parts.append(f"{human(report.array_bytes)} in {n} array{'s' if n != 1 else ''}")
    return ", ".join(parts)


def _table(arrays: list[ArrayEntry]) -> list[str]:
    header = ("path", "class", "dtype", "shape", "order", "bytes", "offset", "storage")
    rows = [header]
    # By dtype object: many arrays may share one (structured) dtype, costly to print.
    texts: dict[int, str] = {}
    for a in arrays:
        if a.dtype is not None and id(a.dtype) not in texts:
            texts[id(a.dtype)] = str(a.dtype)
        rows.append(
            (
                a.path or "(the object itself)",
                a.cls,
                "?" if a.dtype is None else texts[id(a.dtype)],
                "?" if a.shape is None else _shape(a.shape),
                a.order or "?",
                "?" if a.nbytes is None else human(a.nbytes),
                "-" if a.offset is None else str(a.offset),
                a.storage + (f" {a.file}" if a.file else ""),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {5, 6}  # numbers
    out = []
    for r in rows:
        cells = [
            r[i].rjust(widths[i]) if i in right else r[i].ljust(widths[i])
            for i in range(len(header))
        ]
        out.append("  " + "  ".join(cells).rstrip())
    return out


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def human(n: int) -> str:
    """``n`` bytes for people: ``512 B``, ``1.5 KiB``, ``2.0 GiB``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
