"""``arraypickle plugins``: each plugin, its distribution, status and codecs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import _plugins


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plugins",
        help="list plugins: distribution, version, status, codecs",
        description="List the installed plugins (built-in and from entry points).",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def describe() -> list[dict[str, Any]]:
    """One dict per plugin, as ``--json`` prints them."""
    registry = _plugins.get_registry()
    rows = []
    for info in registry.plugins:
        codecs = [registry.codecs[name] for name in info.codecs if name in registry.codecs]
        rows.append(
            {
                "name": info.name,
                "module": info.module,
                "distribution": info.distribution,
                "version": info.version,
                "status": info.status,
                "reason": info.reason,
                "codecs": [
                    {"name": c.name, "magic": c.magic.hex(), "extensions": list(c.extensions)}
                    for c in codecs
                ],
                "wrappers": list(info.wrappers),
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    rows = describe()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        status = row["status"] + (f" ({row['reason']})" if row["reason"] else "")
        print(f"{row['name']}  {row['distribution']} {row['version']}  {status}")
        for codec in row["codecs"]:
            exts = " ".join(codec["extensions"]) or "-"
            print(f"    codec {codec['name']:<8} magic {codec['magic']:<20} {exts}")
        for wrapper in row["wrappers"]:
            print(f"    array wrapper {wrapper}")
    return 0
