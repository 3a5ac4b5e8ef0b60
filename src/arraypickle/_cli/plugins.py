"""``arraypickle plugins``: each plugin, its distribution, status and codecs.

Text output is a table of plugins (entry-point name, distribution, version, status with
the reason when a plugin failed or is blocked), each followed by its codecs (name, magic
in hex, extensions, default level, whether it takes ``threads``) and array wrappers, then
the known codecs that are not installed with the command that installs them. ``--json``
prints the plugins as a list of objects. The registry is surveyed afresh, recording
conflicts instead of raising them: a plugin that conflicts with one before it shows as
``failed: conflict: ...``, since ``dump`` and ``load`` raise
:class:`arraypickle.PluginConflictError` until the conflict is settled. The command exits
with 1 when any plugin failed (a conflict, an import error, a malformed hook result), so
that a script can check an environment; blocked plugins are not failures.
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from .. import _plugins
from ..codec import default_level


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plugins",
        help="list plugins: distribution, version, status, codecs",
        description=(
            "List the installed plugins (built-in and from the 'arraypickle' entry-point "
            "group): distribution, version, status (loaded, failed with the reason, "
            f"blocked by {_plugins.DISABLE_ENV}) and the codecs each provides."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def _codec_row(codec: Any) -> dict[str, Any]:
    return {
        "name": codec.name,
        "magic": codec.magic.hex(),
        "extensions": list(codec.extensions),
        "default_level": default_level(codec),
        "parallel": bool(getattr(codec, "parallel", False)),
    }


def describe(registry: _plugins.Registry | None = None) -> list[dict[str, Any]]:
    """One dict per plugin of ``registry`` (default: the process's), as ``--json``
    prints them.

    Example::

        >>> [p["name"] for p in describe()][:3]
        ['numpy', 'zlib', 'gzip']
    """
    registry = registry or _plugins.get_registry()
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
                "codecs": [_codec_row(c) for c in codecs],
                "wrappers": list(info.wrappers),
            }
        )
    return rows


def not_installed(registry: _plugins.Registry | None = None) -> list[tuple[str, str]]:
    """The known plugin codecs that are not installed: (codec name, distribution)."""
    installed = (registry or _plugins.get_registry()).codecs
    return [
        (name, known.distribution)
        for name, known in sorted(_plugins.KNOWN_CODECS.items())
        if name not in installed
    ]


def _table(rows: list[dict[str, Any]]) -> list[str]:
    head = ("PLUGIN", "DISTRIBUTION", "VERSION", "STATUS")
    cells = [(r["name"], r["distribution"], r["version"], r["status"] + _reason(r)) for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(3)]
    indent = " " * (widths[0] + 2)
    codecs = [c for row in rows for c in row["codecs"]]
    # Columns as wide as their longest entry (a third party's name may be long).
    name_w = max([7, *(len(c["name"]) for c in codecs)])
    magic_w = max([29, *(len(c["magic"]) * 3 // 2 for c in codecs)])
    ext_w = max([7, *(len(" ".join(c["extensions"])) for c in codecs)])

    def line(cols: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cols[:3], widths, strict=True)) + "  " + cols[3]

    out = [line(head)]
    for row, cell in zip(rows, cells, strict=True):
        out.append(line(cell))
        for codec in row["codecs"]:
            magic = bytes.fromhex(codec["magic"]).hex(" ")
            exts = " ".join(codec["extensions"]) or "-"
            extra = f"default level {codec['default_level']}"
            if codec["parallel"]:
                extra += ", threads"
            out.append(
                f"{indent}codec {codec['name']:<{name_w}} magic {magic:<{magic_w}}  "
                f"{exts:<{ext_w}} {extra}"
            )
        for wrapper in row["wrappers"]:
            out.append(f"{indent}array wrapper {wrapper}")
    return out


def _reason(row: dict[str, Any]) -> str:
    if not row["reason"]:
        return ""
    return f": {row['reason']}" if row["status"] == "failed" else f" ({row['reason']})"


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        # The table says what failed and why: warnings turned into errors (-W error)
        # must not stop the command that explains them.
        warnings.simplefilter("default")
        registry = _plugins.survey()
    rows = describe(registry)
    status = 1 if any(r["status"] == "failed" for r in rows) else 0
    if args.json:
        print(json.dumps(rows, indent=2))
        return status
    lines = _table(rows)
    blocked = {r["name"] for r in rows if r["status"] == "blocked"}  # listed above already
    missing = [(n, d) for n, d in not_installed(registry) if n not in blocked]
    if missing:
        lines.append("")
        lines.append("Not installed: " + ", ".join(f"{n} (pip install {d})" for n, d in missing))
    if registry.conflicts:
        lines.append("")
        lines.append(
            "Conflicts: dump and load raise PluginConflictError until each is settled "
            f"(uninstall a plugin, or block it with {_plugins.DISABLE_ENV}=<plugin>)."
        )
    print("\n".join(lines))
    return status
