"""``arraypickle demo``: dump and load a generated dataset with every installed codec."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import _demo
from .._version import __version__


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="dump and load a generated dataset with every codec: size, time, memory",
        description=(
            "Generate a dataset (a dict of arrays), dump and load it with no compression "
            "and with every installed codec at its default level, and print file size, "
            "ratio, times and peak memory, checking that what loads equals what was saved."
        ),
    )
    parser.add_argument(
        "--size-mb",
        type=float,
        default=_demo.DEFAULT_SIZE_MB,
        help="dataset size in MB (default: %(default)g)",
    )
    parser.add_argument(
        "--codecs",
        help="comma-separated codecs to run ('none' for no compression); "
        "default: none and every installed codec",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=_demo.DEFAULT_MAX_SECONDS,
        help="skip codecs projected to take longer than this to dump and load "
        "(default: %(default)g; 0: no limit; codecs named by --codecs always run)",
    )
    parser.add_argument("--dir", help="where the files go (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.size_mb < float("inf"):  # nan and inf are floats argparse accepts
        raise ValueError(f"--size-mb must be a positive number, got {args.size_mb:g}")
    if not args.max_seconds >= 0:  # nan too
        raise ValueError(f"--max-seconds must be 0 or more, got {args.max_seconds:g}")
    codecs = None
    if args.codecs is not None:
        codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
        if not codecs:
            raise ValueError("--codecs lists no codec")
        _demo.codec_names(codecs)  # an unknown name fails now, not after building the data
    data = _demo.make_dataset(args.size_mb)
    total = _demo.data_bytes(data)
    if not args.json:
        print(f"arraypickle {__version__} demo: {_demo.describe(data)}")
        print()
        print(_demo.header())

    def show(row: _demo.DemoRow) -> None:
        if not args.json:
            print(_demo.format_row(row, total), flush=True)

    rows = _demo.run_demo(
        codecs=codecs, directory=args.dir, max_seconds=args.max_seconds, progress=show, data=data
    )
    if args.json:
        print(json.dumps({"data_bytes": total, "rows": _demo.as_dicts(rows)}, indent=2))
    else:
        print("\n".join(_demo.footer(total)))
    return 0 if all(r.verified is not False for r in rows) else 1
