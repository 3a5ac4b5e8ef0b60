"""The plugin registry: built-in and entry-point plugins, codecs and array wrappers.

Built once, on first need, under a lock. Entry points come from the group
``arraypickle``; each names a module of hook implementations.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import _format as fmt
from . import hookspecs
from ._errors import ArrayPickleError, PluginConflictError, UnknownCodecError
from ._warnings import warn_caller

ENTRY_POINT_GROUP = "arraypickle"
DISABLE_ENV = "ARRAYPICKLE_DISABLE_PLUGINS"

BUILTIN_PLUGINS = {
    "numpy": "arraypickle._numpy",
    "zlib": "arraypickle._stdcodecs.zlib",
    "gzip": "arraypickle._stdcodecs.gzip",
    "bz2": "arraypickle._stdcodecs.bz2",
    "lzma": "arraypickle._stdcodecs.lzma",
    "xz": "arraypickle._stdcodecs.xz",
}


@dataclass(frozen=True)
class KnownCodec:
    """A codec that a separately installed distribution provides."""

    distribution: str
    magic: bytes
    extensions: tuple[str, ...]

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION

    def hint(self) -> str:
        """How to get this codec back."""
        if self.builtin:
            return (
                f"it is built into arraypickle but disabled ({DISABLE_ENV} names it, or it "
                "failed to load: see `arraypickle plugins`)"
            )
        return f"it is not installed; install it with: pip install {self.distribution}"


BUILTIN_DISTRIBUTION = "arraypickle (built in)"


# Codecs we can name without having them installed: for install hints when a user
# asks for one, or a file starts with its magic.
KNOWN_CODECS = {
    "lz4": KnownCodec("arraypickle-lz4", b"\x04\x22\x4d\x18", (".lz4",)),
    "zstd": KnownCodec("arraypickle-zstd", b"\x28\xb5\x2f\xfd", (".zst",)),
    "snappy": KnownCodec("arraypickle-snappy", b"\xff\x06\x00\x00sNaPpY", (".sz",)),
    "blosc": KnownCodec("arraypickle-blosc", b"\x89BLF\r\n\x1a\n", (".blosc",)),
}

# Magics codecs may not shadow: the container's and pickle's PROTO opcode.
RESERVED_MAGICS = {
    fmt.MAGIC: "the arraypickle container",
    b"\x80": "pickle protocol 2+",
    b"ZF": "joblib 0.8.4-0.9's zlib framing",
}


@dataclass
class PluginInfo:
    """What ``arraypickle plugins`` reports about one plugin."""

    name: str
    module: str
    distribution: str
    version: str
    status: str  # "loaded", "failed" or "blocked"
    reason: str = ""
    codecs: list[str] = field(default_factory=list)
    wrappers: list[str] = field(default_factory=list)


class Registry:
    """The installed codecs and array wrappers, indexed for dump and load."""

    def __init__(self) -> None:
        self.codecs: dict[str, Any] = {}
        self.extensions: dict[str, Any] = {}
        self.wrappers: dict[str, Any] = {}
        self.plugins: list[PluginInfo] = []
        self._claims: dict[type, Any] = {}
        self._sources: dict[int, str] = {}
        # type -> wrapper or None; a dict so the pickler's lookup stays in C when cached
        self.wrapper_index = _WrapperIndex(self)

    # -- codecs -------------------------------------------------------------------

    def add_codec(self, codec: Any, source: str, force: bool = False) -> None:
        _check_codec(codec, source)
        clashes = self._codec_clashes(codec)
        if clashes and not force:
            other, what = clashes[0]
            if isinstance(other, KnownCodec):
                raise PluginConflictError(
                    f"codec {codec.name!r} from {source} claims the {what} (distribution "
                    f"{other.distribution}); register it with force=True to take it anyway"
                )
            raise PluginConflictError(
                f"codec {codec.name!r} from {source} and codec {other.name!r} from "
                f"{self._sources.get(id(other), '?')} claim the same {what}; uninstall "
                f"one, block one with {DISABLE_ENV}=<plugin>, or register with force=True"
            )
        for other, _ in clashes:
            if not isinstance(other, KnownCodec):
                self._remove_codec(other)
        self.codecs[codec.name] = codec
        for ext in codec.extensions:
            self.extensions[ext.lower()] = codec
        self._sources[id(codec)] = source

    def _codec_clashes(self, codec: Any) -> list[tuple[Any, str]]:
        found = []
        for name, known in KNOWN_CODECS.items():
            # A known codec's magic stays its own even while it is not installed, so
            # that its files keep their install hint instead of meeting a stranger.
            related = known.magic.startswith(codec.magic) or codec.magic.startswith(known.magic)
            if related and codec.name != name and name not in self.codecs:
                found.append((known, f"magic {codec.magic.hex(' ')}, that of {name!r}"))
        for other in self.codecs.values():
            if other.name == codec.name:
                found.append((other, f"name {codec.name!r}"))
            elif {e.lower() for e in other.extensions} & {e.lower() for e in codec.extensions}:
                found.append((other, "extension"))
            elif other.magic.startswith(codec.magic) or codec.magic.startswith(other.magic):
                found.append((other, f"magic {codec.magic.hex(' ')} / {other.magic.hex(' ')}"))
        return found

    def _remove_codec(self, codec: Any) -> None:
        self.codecs.pop(codec.name, None)
        for ext in [e for e, c in self.extensions.items() if c is codec]:
            del self.extensions[ext]

    def codec_for_path(self, path: str) -> Any | None:
        lowered = path.lower()
        for ext, codec in self.extensions.items():
            if lowered.endswith(ext):
                return codec
        return None

    def magics(self) -> dict[bytes, Any]:
        """Every magic to detect on load: installed codecs, then known missing ones
        (as ``(name, KnownCodec)``), built-in ones that were blocked included."""
        found: dict[bytes, Any] = {c.magic: c for c in self.codecs.values()}
        for name, known in {**builtin_codecs(), **KNOWN_CODECS}.items():
            if name not in self.codecs and known.magic not in found:
                found[known.magic] = (name, known)
        return found

    def codec_at(self, head: bytes, file: str, magics: dict[bytes, Any] | None = None) -> Any:
        """The installed codec whose magic ``head`` starts with, or None.

        A magic of a known codec that is not available (a plugin not installed, a
        built-in one blocked) raises :class:`UnknownCodecError` naming ``file`` and how
        to get the codec. ``magics``: :meth:`magics`, when the caller has it already.
        """
        for magic, codec in (self.magics() if magics is None else magics).items():
            if head.startswith(magic):
                if isinstance(codec, tuple):
                    raise UnknownCodecError(missing_codec_message(file, *codec))
                return codec
        return None

    def codec(self, name: str) -> Any:
        try:
            return self.codecs[name]
        except KeyError:
            raise UnknownCodecError(unknown_codec_message(self, name)) from None

    # -- wrappers -----------------------------------------------------------------

    def add_wrapper(self, wrapper: Any, source: str, force: bool = False) -> None:
        _check_wrapper(wrapper, source)
        old = self.wrappers.get(wrapper.name)
        if old is not None and not force:
            raise PluginConflictError(
                f"array wrapper {wrapper.name!r} from {source} and the one from "
                f"{self._sources.get(id(old), '?')} share a name"
            )
        for cls in wrapper.types:
            holder = self._claims.get(cls)
            if holder is not None and holder is not old and not force:
                raise PluginConflictError(
                    f"array wrappers {wrapper.name!r} ({source}) and {holder.name!r} "
                    f"({self._sources.get(id(holder), '?')}) both claim {cls.__qualname__}"
                )
        if old is not None:
            self._claims = {t: w for t, w in self._claims.items() if w is not old}
        self.wrappers[wrapper.name] = wrapper
        for cls in wrapper.types:
            self._claims[cls] = wrapper
        self._sources[id(wrapper)] = source
        self.wrapper_index.clear()

    def wrapper_for(self, cls: type) -> Any | None:
        for base in getattr(cls, "__mro__", (cls,)):
            wrapper = self._claims.get(base)
            if wrapper is not None:
                return wrapper
        return None


class _WrapperIndex(dict):
    """type -> wrapper (or None), filled on first sight of each type."""

    def __init__(self, registry: Registry) -> None:
        super().__init__()
        self._registry = registry

    def __missing__(self, cls: type) -> Any | None:
        wrapper = self[cls] = self._registry.wrapper_for(cls)
        return wrapper


def codec_choices(registry: Registry, exclude: object = None) -> str:
    """'Installed codecs: ...' plus the known codecs one could install."""
    installed = ", ".join(sorted(registry.codecs)) or "none"
    missing = [
        f"{n} (pip install {k.distribution})"
        for n, k in sorted(KNOWN_CODECS.items())
        if n not in registry.codecs and n != exclude
    ]
    more = f"; also available: {', '.join(missing)}" if missing else ""
    return f"Installed codecs: {installed}{more}"


def unknown_codec_message(registry: Registry, name: object) -> str:
    known = {**builtin_codecs(), **KNOWN_CODECS}.get(name) if isinstance(name, str) else None
    hint = f": {known.hint()}" if known else ""
    return f"unknown codec {name!r}{hint}. {codec_choices(registry, exclude=name)}"


def missing_codec_message(file: str, codec_name: str, known: KnownCodec) -> str:
    """The error for ``file``, compressed with a known codec that is not available."""
    return f"{file} is compressed with {codec_name}: {known.hint()}"


@functools.lru_cache(maxsize=1)
def builtin_codecs() -> dict[str, KnownCodec]:
    """The built-in codecs as known codecs: named (and detected) even when blocked."""
    found = {}
    for module in BUILTIN_PLUGINS.values():
        hook = getattr(importlib.import_module(module), "arraypickle_register_codecs", None)
        for codec in hook() if hook is not None else ():
            found[codec.name] = KnownCodec(BUILTIN_DISTRIBUTION, codec.magic, codec.extensions)
    return found


def _check_codec(codec: Any, source: str) -> None:
    problems = []
    if not isinstance(getattr(codec, "name", None), str) or not codec.name:
        problems.append("name must be a non-empty str")
    if not isinstance(getattr(codec, "magic", None), bytes) or not codec.magic:
        problems.append("magic must be non-empty bytes")
    exts = getattr(codec, "extensions", None)
    if not isinstance(exts, tuple) or not all(
        isinstance(e, str) and e.startswith(".") for e in exts
    ):
        problems.append("extensions must be a tuple of str starting with a dot")
    for method in ("open_writer", "open_reader"):
        if not callable(getattr(codec, method, None)):
            problems.append(f"{method} must be callable")
    if not problems:
        for magic, owner in RESERVED_MAGICS.items():
            if magic.startswith(codec.magic) or codec.magic.startswith(magic):
                problems.append(f"magic {codec.magic.hex(' ')} clashes with {owner}")
    if problems:
        raise PluginConflictError(f"codec {codec!r} from {source}: " + "; ".join(problems))


def _check_wrapper(wrapper: Any, source: str) -> None:
    ok = (
        isinstance(getattr(wrapper, "name", None), str)
        and wrapper.name
        and isinstance(getattr(wrapper, "types", None), tuple)
        and all(isinstance(t, type) for t in wrapper.types)
        and callable(getattr(wrapper, "expose", None))
        and callable(getattr(wrapper, "rebuild", None))
    )
    if not ok:
        raise PluginConflictError(
            f"array wrapper {wrapper!r} from {source} needs a str name, a tuple of "
            f"types, and expose/rebuild methods"
        )


# -- building ---------------------------------------------------------------------

_lock = threading.RLock()
_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first call."""
    global _registry
    registry = _registry
    if registry is None:
        with _lock:
            if _registry is None:
                _registry = _build()
            registry = _registry
    return registry


def reset() -> None:
    """Forget the registry; the next use scans plugins again (for tests and the CLI)."""
    global _registry
    with _lock:
        _registry = None


def blocked_names() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def _build() -> Registry:
    registry = Registry()
    manager = pluggy.PluginManager("arraypickle")
    manager.add_hookspecs(hookspecs)
    blocked = blocked_names()
    infos: dict[str, PluginInfo] = {}
    version = _own_version()
    candidates: list[tuple[str, str, str, str, Any]] = [
        (name, module, "arraypickle", version, None) for name, module in BUILTIN_PLUGINS.items()
    ]
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        candidates.append(
            (ep.name, ep.value, dist.name if dist else "?", dist.version if dist else "?", ep)
        )
    for name, module, dist, ver, ep in candidates:
        info = PluginInfo(name, module, dist, ver, "loaded")
        registry.plugins.append(info)
        if name in blocked:
            info.status, info.reason = "blocked", f"listed in {DISABLE_ENV}"
            manager.set_blocked(name)
            continue
        if name in infos:
            info.status, info.reason = "failed", f"another plugin is already named {name!r}"
            warn_caller(f"arraypickle plugin {name!r} ({dist}): {info.reason}")
            continue
        try:
            plugin = ep.load() if ep is not None else importlib.import_module(module)
            manager.register(plugin, name=name)
        except Exception as exc:
            info.status, info.reason = "failed", f"{type(exc).__name__}: {exc}"
            warn_caller(
                f"arraypickle plugin {name!r} ({dist}) failed to load and is skipped: {info.reason}"
            )
            continue
        infos[name] = info
    _collect(manager, registry, infos)
    return registry


def _collect(
    manager: pluggy.PluginManager, registry: Registry, infos: dict[str, PluginInfo]
) -> None:
    """Call each plugin's hooks on their own, so one broken plugin spoils only itself."""
    adders = {
        "arraypickle_register_codecs": (registry.add_codec, "codecs"),
        "arraypickle_register_wrappers": (registry.add_wrapper, "wrappers"),
    }
    for hook_name, (add, kind) in adders.items():
        caller = getattr(manager.hook, hook_name)
        # pluggy lists implementations last-registered first; keep registration order.
        for impl in reversed(caller.get_hookimpls()):
            info = infos[impl.plugin_name]
            if info.status != "loaded":
                continue
            source = f"plugin {info.name!r} ({info.distribution})"
            try:
                items = list(impl.function() or ())
            except Exception as exc:
                info.status, info.reason = "failed", f"{hook_name} raised {exc!r}"
                warn_caller(f"arraypickle {source}: {info.reason}")
                continue
            for item in items:
                try:
                    add(item, source)
                except PluginConflictError:
                    raise
                except ArrayPickleError as exc:  # pragma: no cover - defensive
                    raise PluginConflictError(str(exc)) from exc
                getattr(info, kind).append(item.name)


def _own_version() -> str:
    from ._version import __version__

    return __version__


# -- public API -------------------------------------------------------------------


def codecs() -> dict[str, Any]:
    """The installed codecs by name, built-in and from plugins.

    Examples:

        >>> sorted(arraypickle.codecs())[:3]
        ['bz2', 'gzip', 'lzma']
    """
    return dict(get_registry().codecs)


def register_codec(codec: Any, force: bool = False) -> None:
    """Register ``codec`` from code, next to the plugins' codecs.

    Parameters:
        codec: an object with ``name``, ``magic``, ``extensions``, ``open_writer`` and
            ``open_reader`` (see :mod:`arraypickle.codec`).
        force: replace installed codecs that claim the same name, extension or magic
            instead of raising :class:`PluginConflictError`.

    Examples:

        >>> arraypickle.register_codec(MyCodec())
        >>> arraypickle.dump(obj, "data.pkl", compress=("mycodec", 5))
    """
    get_registry().add_codec(codec, "register_codec()", force=force)


def register_wrapper(wrapper: Any, force: bool = False) -> None:
    """Register an array wrapper from code (see :mod:`arraypickle.wrapper`).

    Parameters:
        wrapper: an object with ``name``, ``types``, ``expose`` and ``rebuild``.
        force: replace an installed wrapper of the same name, or claiming the same
            types, instead of raising :class:`PluginConflictError`.

    Examples:

        >>> arraypickle.register_wrapper(BlobWrapper())
    """
    get_registry().add_wrapper(wrapper, "register_wrapper()", force=force)
