"""The ``arraypickle`` command line: one module per subcommand.

Each subcommand module has ``add_parser(subparsers)`` (registering its parser, with
``func`` set to its ``run(args) -> int``). Exit codes: 0 ok, 1 the file is bad,
2 usage. Errors print in one line, without a traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .._errors import ArrayPickleError, CorruptFileError

EXIT_OK = 0
EXIT_BAD_FILE = 1
EXIT_USAGE = 2

SUBCOMMANDS = ("plugins", "verify")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arraypickle",
        description="Persist Python objects holding big numpy arrays: inspect and manage files.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except (CorruptFileError, FileNotFoundError, IsADirectoryError) as exc:
        return _fail(args, exc, EXIT_BAD_FILE)
    except (ArrayPickleError, ValueError, OSError) as exc:
        return _fail(args, exc, EXIT_BAD_FILE if isinstance(exc, OSError) else EXIT_USAGE)
    except KeyboardInterrupt:
        return 130


def _fail(args: argparse.Namespace, exc: BaseException, code: int) -> int:
    if args.debug:
        raise exc
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    print(f"arraypickle {args.command}: error: {message}", file=sys.stderr)
    return code
