"""``arraypickle verify FILE``: check every byte of a file without unpickling it.

Exit status 0 when the file is sound, 1 when it is damaged, truncated, not an
arraypickle file, or compressed by a codec that is not installed, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import _verify
from .._errors import ArrayPickleError
from . import EXIT_BAD_FILE, EXIT_OK, _fail


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check a file's checksums and structure without loading it",
        description=(
            "Check every record of an arraypickle file (record headers, checksums of the "
            "pickle opcodes and of every buffer, the END record) and, for a compressed "
            "file, the codec stream's own checks, without unpickling anything: no code "
            "the file names runs. Buffers are read in bounded pieces."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the file (a path, a URL, or - for stdin)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    stdin = args.file == "-"
    try:
        if stdin:
            report = _verify.verify(sys.stdin.buffer, name="<stdin>")
        else:
            report = _verify.verify(args.file)
    except (ArrayPickleError, OSError) as exc:
        if not args.json:
            # Every failure here means the file cannot be vouched for: exit 1, also for
            # a codec that is not installed (which the dispatcher counts as usage).
            return _fail(args, exc, EXIT_BAD_FILE)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        file = "<stdin>" if stdin else args.file
        print(json.dumps({"ok": False, "file": file, "error": message}))
        return EXIT_BAD_FILE
    if args.json:
        print(json.dumps(report.as_dict()))
        return EXIT_OK
    where = f"{report.codec} stream, " if report.codec else ""
    containers = f"{report.containers} containers" if report.containers > 1 else "container"
    print(
        f"{report.file}: OK ({where}{containers} of {report.container_bytes} bytes: "
        f"{report.records} records, {report.buffers} buffer{'' if report.buffers == 1 else 's'} "
        f"of {report.buffer_bytes} bytes)",
        file=sys.stdout,
    )
    if report.unverified_buffer_bytes:
        print(
            f"{report.file}: note: {report.unverified_buffer_bytes} bytes of buffers were "
            "memory-mapped for writing since the dump, so their checksums were not checked "
            "(`arraypickle convert` writes a sealed copy)",
            file=sys.stdout,
        )
    return EXIT_OK
