"""The ``arraypickle`` command line: one module per subcommand.

Each subcommand module has ``add_parser(subparsers)`` (registering its parser, with
``func`` set to its ``run(args) -> int``). Exit codes (``docs/cli.md``): 0 ok; 1 a file
could not be used (missing, unreadable, a directory, damaged, compressed by a codec
that is not installed, refused by safe loading; an output that cannot be written);
2 the command line is wrong. Errors print in one line, without a traceback unless
``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .._errors import (
    ArrayPickleError,
    CorruptFileError,
    MissingDependencyError,
    PluginConflictError,
    UnknownWrapperError,
    UntrustedTypeError,
)

EXIT_OK = 0
EXIT_BAD_FILE = 1
EXIT_USAGE = 2

SUBCOMMANDS = ("plugins", "demo", "info", "verify", "convert")


class CliError(Exception):
    """An error a subcommand reports itself, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_FILE) -> None:
        super().__init__(message)
        self.code = code


# What the file (or the machine) is to blame for: exit 1. UnknownCodecError is not
# among them: a codec named on the command line is a usage error (2); subcommands that
# meet a file compressed by a missing codec raise CliError(..., EXIT_BAD_FILE) for it.
_FILE_ERRORS = (
    CorruptFileError,
    UnknownWrapperError,
    UntrustedTypeError,
    MissingDependencyError,
    OSError,
)


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser, which refuses an unknown argument with its own usage.

    argparse hands a subcommand's leftovers up to the top-level parser, whose usage
    lists none of the subcommand's options.
    """

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arraypickle",
        description="Persist Python objects holding big numpy arrays: inspect and manage files.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_SubcommandParser
    )
    subparsers.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    for sub in subparsers.choices.values():
        # Also after the subcommand; SUPPRESS keeps a value given before it.
        sub.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
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
    except CliError as exc:
        return _fail(args, exc, exc.code)
    except BrokenPipeError:
        # The reader of our output went away (``arraypickle info f | head``).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BAD_FILE
    except _FILE_ERRORS as exc:
        return _fail(args, exc, EXIT_BAD_FILE)
    except PluginConflictError as exc:  # the installation is wrong, not the command line
        return _fail(args, exc, EXIT_BAD_FILE)
    except (ArrayPickleError, ValueError) as exc:
        return _fail(args, exc, EXIT_USAGE)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _fail(args, exc, EXIT_BAD_FILE, unexpected=True)


def _fail(args: argparse.Namespace, exc: BaseException, code: int, unexpected: bool = False) -> int:
    if getattr(args, "debug", False):
        raise exc
    message = _message(exc)
    if unexpected:
        message = f"{type(exc).__name__}: {message} (run with --debug for the traceback)"
    print(f"arraypickle {args.command}: error: {message}", file=sys.stderr)
    return code


def _message(exc: BaseException) -> str:
    """One line saying what went wrong, naming the file when the error knows it."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.filename!r}: {exc.strerror}"
    text = str(exc)
    if isinstance(exc, OSError) and not exc.strerror and text:
        # fsspec's FileNotFoundError('/bucket/key') says only the path: name the error.
        text = f"{type(exc).__name__}: {text}"
    return text.splitlines()[0] if text else type(exc).__name__
