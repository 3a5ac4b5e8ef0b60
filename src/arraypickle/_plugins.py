"""The plugin registry: built-in and entry-point plugins, codecs and array wrappers.

Built once, on first need: plugins are imported first, then registered under a lock.
Entry points come from the group ``arraypickle``; each names a module of hook
implementations.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
import threading
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any

import pluggy

from . import _format as fmt
from . import hookspecs
from ._errors import PluginConflictError, UnknownCodecError, as_flag
from ._streams import FRAMED_MAGICS, SKIPPABLE_MAGICS, after_skippable
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
    # Its name now belongs to another codec (``register_codec(..., force=True)``).
    replaced: bool = False

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION

    def hint(self, name: str) -> str:
        """How to get this codec (called ``name``) back."""
        if self.replaced:
            return (
                "that codec was replaced in this process by one registered with "
                "register_codec(..., force=True)"
            )
        if self.builtin:
            return (
                f"it is built into arraypickle but disabled ({DISABLE_ENV} names it, or it "
                "failed to load: see `arraypickle plugins`)"
            )
        if name in blocked_names():
            # Plugins are blocked by their entry-point names, which are the codecs' names.
            return (
                f"its plugin is blocked ({DISABLE_ENV} names {name!r}; `arraypickle "
                f"plugins` shows it), or else not installed: pip install {self.distribution}"
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

# What ``compress=`` and the CLI's ``--compress NAME[:LEVEL]`` can name: lowercase (the
# CLI lowercases), no ':' (it separates the level), not a word that means "none" there.
_CODEC_NAME = re.compile(r"[a-z0-9][a-z0-9_.+-]*\Z")
RESERVED_NAMES = ("none", "false", "no")
# Endings that say "an uncompressed pickle": a codec claiming one would compress every
# such dump of every user who installs it.
_EXTENSION = re.compile(r"(\.[a-z0-9_+-]+)+\Z", re.IGNORECASE)
RESERVED_EXTENSIONS = (".pkl", ".pickle", ".joblib", ".npy")


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
    """The installed codecs and array wrappers, indexed for dump and load.

    Changes build new dicts and then replace the old ones (never changing them in
    place, never publishing a state without the codec being replaced), so threads that
    dump or load while a codec is registered see the old codecs or the new ones.
    """

    def __init__(self) -> None:
        self.codecs: dict[str, Any] = {}
        self.extensions: dict[str, Any] = {}
        self.wrappers: dict[str, Any] = {}
        self.plugins: list[PluginInfo] = []
        # Conflicts that a survey (``strict=False``) recorded instead of raising.
        self.conflicts: list[str] = []
        self._claims: dict[type, Any] = {}
        self._sources: dict[int, str] = {}
        # Names of codecs that register_codec(force=True) pushed out, for load's hints.
        self._replaced: frozenset[str] = frozenset()
        # type -> wrapper or None; a dict so the pickler's lookup stays in C when cached.
        # Replaced (never cleared) when the claims change: a thread filling the old one
        # from the old claims cannot leave a stale answer in the new one.
        self.wrapper_index = _WrapperIndex(self)

    # What a conflict during a plugin's registration, or a test, puts back as it was.
    _STATE = ("codecs", "extensions", "wrappers", "_claims", "_sources", "_replaced")

    def _state(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._STATE)

    def _restore(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self._STATE, state, strict=True):
            setattr(self, name, value)
        self.wrapper_index = _WrapperIndex(self)

    # -- codecs -------------------------------------------------------------------

    def add_codec(self, codec: Any, source: str, force: bool = False) -> None:
        problems = codec_problems(codec)
        if problems:
            raise PluginConflictError(f"codec {codec!r} from {source}: " + "; ".join(problems))
        old = self.codecs.get(codec.name)
        if old is codec:
            return  # registered again (a notebook cell run twice): nothing to do
        if _same_codec(old, codec):
            force = True  # another instance of that codec (a plugin that also registers
            # itself on import, a notebook cell run again): it replaces its twin
        clashes = self._codec_clashes(codec)
        if clashes and not force:
            other, what = clashes[0]
            if isinstance(other, KnownCodec):
                settle = (
                    _way_out(source, "take it anyway")
                    if source.startswith("register_")
                    else "choose another magic: a known codec's stays reserved for its plugin"
                )
                raise PluginConflictError(
                    f"codec {codec.name!r} from {source} claims the {what} (distribution "
                    f"{other.distribution}); {settle}"
                )
            raise PluginConflictError(
                f"codec {codec.name!r} from {source} and codec {other.name!r} from "
                f"{self._sources.get(id(other), '?')} claim the same {what}; "
                f"{_way_out(source, 'replace the other')}"
            )
        gone = {id(other): other for other, _ in clashes if not isinstance(other, KnownCodec)}
        codecs = {n: c for n, c in self.codecs.items() if id(c) not in gone}
        codecs[codec.name] = codec
        extensions = {e: c for e, c in self.extensions.items() if id(c) not in gone}
        for ext in codec.extensions:
            extensions[ext.lower()] = codec
        self._replaced = self._replaced | {c.name for c in gone.values()}
        self._sources = {**self._sources, id(codec): source}
        # The extensions first: until the codecs follow, a path may still pick a codec
        # being replaced, which works; never one that is not there.
        self.extensions = extensions
        self.codecs = codecs

    def _remove_codec(self, codec: Any) -> None:
        """Forget ``codec`` (tests use it to play a plugin uninstalled)."""
        self.codecs = {n: c for n, c in self.codecs.items() if c is not codec}
        self.extensions = {e: c for e, c in self.extensions.items() if c is not codec}

    def _codec_clashes(self, codec: Any) -> list[tuple[Any, str]]:
        found = []
        for name, known in KNOWN_CODECS.items():
            # A known codec's magic stays its own even while it is not installed, so
            # that its files keep their install hint instead of meeting a stranger.
            related = known.magic.startswith(codec.magic) or codec.magic.startswith(known.magic)
            if related and codec.name != name and name not in self.codecs:
                found.append((known, f"magic {codec.magic.hex(' ')}, that of {name!r}"))
        mine = {e.lower() for e in codec.extensions}
        for other in self.codecs.values():
            if other.name == codec.name:
                found.append((other, f"name {codec.name!r}"))
            elif shared := mine & {e.lower() for e in other.extensions}:
                found.append((other, f"extension {', '.join(sorted(shared))}"))
            elif other.magic.startswith(codec.magic) or codec.magic.startswith(other.magic):
                found.append((other, f"magic {codec.magic.hex(' ')} / {other.magic.hex(' ')}"))
        return found

    def codec_for_path(self, path: str) -> Any | None:
        """The codec claiming the longest ending of ``path`` (``.pkl.z`` over ``.z``)."""
        lowered = path.lower()
        best = None
        for ext, codec in self.extensions.items():
            if lowered.endswith(ext) and (best is None or len(ext) > len(best[0])):
                best = ext, codec
        return None if best is None else best[1]

    def magics(self) -> dict[bytes, Any]:
        """Every magic to detect on load: installed codecs, then known missing ones
        (as ``(name, KnownCodec)``), built-in ones that were blocked or replaced
        included."""
        codecs = self.codecs
        found: dict[bytes, Any] = {c.magic: c for c in codecs.values()}
        for name, known in {**builtin_codecs(), **KNOWN_CODECS}.items():
            if known.magic in found:
                continue
            if name in self._replaced:  # register_codec(force=True) pushed it out
                found[known.magic] = (name, replace(known, replaced=True))
            else:  # missing, or its name taken by a codec of another magic
                found[known.magic] = (name, known)
        return found

    def codec_at(self, head: bytes, file: str, magics: dict[bytes, Any] | None = None) -> Any:
        """The installed codec whose magic ``head`` starts with, or None.

        A magic of a known codec that is not available (a plugin not installed, a
        built-in one blocked) raises :class:`UnknownCodecError` naming ``file`` and how
        to get the codec. ``magics``: :meth:`magics`, when the caller has it already.
        """
        magics = self.magics() if magics is None else magics
        if head[:4] in SKIPPABLE_MAGICS:  # only an LZ4 or Zstandard frame may follow
            done, start = after_skippable(head)
            if not done or head[start : start + 4] not in FRAMED_MAGICS:
                return None
            head = head[start:]
        for magic, codec in magics.items():
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
        if not wrapper_is_wellformed(wrapper):
            raise PluginConflictError(f"array wrapper {wrapper!r} from {source}: {WRAPPER_NEEDS}")
        old = self.wrappers.get(wrapper.name)
        if old is wrapper:
            return  # registered again: nothing to do
        # Another instance of the same wrapper (a plugin that also registers itself on
        # import, a notebook cell run again) replaces its twin, as for codecs; a type
        # taken from the twin by force stays taken.
        if old is not None and not force and not _same_wrapper(old, wrapper):
            raise PluginConflictError(
                f"array wrapper {wrapper.name!r} from {source} and the one from "
                f"{self._sources.get(id(old), '?')} share a name; "
                f"{_way_out(source, 'replace it')}"
            )
        for cls in wrapper.types:
            holder = self._claims.get(cls)
            if holder is not None and holder is not old and not force:
                raise PluginConflictError(
                    f"array wrappers {wrapper.name!r} ({source}) and {holder.name!r} "
                    f"({self._sources.get(id(holder), '?')}) both claim {cls.__qualname__}; "
                    f"{_way_out(source, 'take it')}"
                )
        claims = {t: w for t, w in self._claims.items() if w is not old}
        for cls in wrapper.types:
            claims[cls] = wrapper
        self.wrappers = {**self.wrappers, wrapper.name: wrapper}
        self._sources = {**self._sources, id(wrapper): source}
        self._claims = claims
        self.wrapper_index = _WrapperIndex(self)  # after the claims: see __init__

    def wrapper_for(self, cls: type) -> Any | None:
        for base in getattr(cls, "__mro__", (cls,)):
            wrapper = self._claims.get(base)
            if wrapper is not None:
                return wrapper
        return None


# How many types the wrapper index remembers before it starts again: a program that
# makes classes as it runs (a class per call, namedtuple factories) would otherwise
# keep every class it ever dumped alive, through the index.
INDEX_LIMIT = 4096


class _WrapperIndex(dict):
    """type -> wrapper (or None), filled on first sight of each type."""

    def __init__(self, registry: Registry) -> None:
        super().__init__()
        self._registry = registry

    def __missing__(self, cls: type) -> Any | None:
        wrapper = self._registry.wrapper_for(cls)
        if len(self) >= INDEX_LIMIT:
            self.clear()
        self[cls] = wrapper
        return wrapper


def codec_choices(registry: Registry, exclude: object = None) -> str:
    """'Installed codecs: ...' plus the known codecs one could install."""
    installed = ", ".join(sorted(registry.codecs)) or "none"
    blocked = blocked_names()
    missing = [
        f"{n} (blocked by {DISABLE_ENV})" if n in blocked else f"{n} (pip install {k.distribution})"
        for n, k in sorted(KNOWN_CODECS.items())
        if n not in registry.codecs and n != exclude
    ]
    more = f"; also available: {', '.join(missing)}" if missing else ""
    return f"Installed codecs: {installed}{more}"


def unknown_codec_message(registry: Registry, name: object) -> str:
    known = {**builtin_codecs(), **KNOWN_CODECS}.get(name) if isinstance(name, str) else None
    if known is not None and name in registry._replaced:
        known = replace(known, replaced=True)  # pushed out by another codec's force=True
    hint = f": {known.hint(name)}" if known else ""
    if not known and name in blocked_names():
        hint = f": a plugin of that name is blocked by {DISABLE_ENV}"
    return f"unknown codec {name!r}{hint}. {codec_choices(registry, exclude=name)}"


def missing_codec_message(file: str, codec_name: str, known: KnownCodec) -> str:
    """The error for ``file``, compressed with a known codec that is not available."""
    return f"{file} is compressed with {codec_name}: {known.hint(codec_name)}"


@functools.lru_cache(maxsize=1)
def builtin_codecs() -> dict[str, KnownCodec]:
    """The built-in codecs as known codecs: named (and detected) even when blocked."""
    found = {}
    for module in BUILTIN_PLUGINS.values():
        hook = getattr(importlib.import_module(module), "arraypickle_register_codecs", None)
        for codec in hook() if hook is not None else ():
            found[codec.name] = KnownCodec(BUILTIN_DISTRIBUTION, codec.magic, codec.extensions)
    return found


def codec_problems(codec: Any) -> list[str]:
    """What keeps ``codec`` from being a codec (empty when nothing does)."""
    problems = []
    name = getattr(codec, "name", None)
    if not isinstance(name, str) or not name:
        problems.append("name must be a non-empty str")
    elif not _CODEC_NAME.match(name) or name in RESERVED_NAMES or name.isdigit():
        problems.append(
            f"name {name!r} must be lowercase letters, digits and _.+- (a letter or digit "
            f"first), not a level nor one of {', '.join(RESERVED_NAMES)}"
        )
    if not isinstance(getattr(codec, "magic", None), bytes) or not codec.magic:
        problems.append("magic must be non-empty bytes")
    exts = getattr(codec, "extensions", None)
    if not isinstance(exts, tuple) or not all(
        isinstance(e, str) and e.startswith(".") for e in exts
    ):
        problems.append("extensions must be a tuple of str starting with a dot")
    else:
        odd = [e for e in exts if not _EXTENSION.match(e) or e.lower() in RESERVED_EXTENSIONS]
        if odd:
            problems.append(
                f"extensions {', '.join(map(repr, odd))}: an extension is a dot and letters, "
                f"digits or _+- (more parts allowed, as in .tar.gz), not one of "
                f"{', '.join(RESERVED_EXTENSIONS)}, which name uncompressed pickles"
            )
    for method in ("open_writer", "open_reader"):
        if not callable(getattr(codec, method, None)):
            problems.append(f"{method} must be callable")
    level = getattr(codec, "default_level", 3)
    if type(level) is not int or not 1 <= level <= 9:
        # Else compress=name would quietly use another level than the one it declares.
        problems.append(f"default_level {level!r} must be an int from 1 to 9")
    if not problems:
        for magic, owner in RESERVED_MAGICS.items():
            if magic.startswith(codec.magic) or codec.magic.startswith(magic):
                problems.append(f"magic {codec.magic.hex(' ')} clashes with {owner}")
    return problems


WRAPPER_NEEDS = "an array wrapper needs a str name, a tuple of types, and expose/rebuild methods"


def wrapper_is_wellformed(wrapper: Any) -> bool:
    return bool(
        isinstance(getattr(wrapper, "name", None), str)
        and wrapper.name
        and isinstance(getattr(wrapper, "types", None), tuple)
        and all(isinstance(t, type) for t in wrapper.types)
        and callable(getattr(wrapper, "expose", None))
        and callable(getattr(wrapper, "rebuild", None))
    )


def _same_class(old: type, new: type) -> bool:
    """Whether ``new`` is ``old``, or ``old`` defined again where it was: a notebook cell
    run again or a module reloaded makes a new class of the same module and qualified
    name, to which that name now leads. (Classes a factory makes share a name that
    leads to neither: they stay different classes.)"""
    if old is new:
        return True
    if old.__module__ != new.__module__ or old.__qualname__ != new.__qualname__:
        return False
    found: Any = sys.modules.get(new.__module__)
    try:
        for part in new.__qualname__.split("."):
            found = getattr(found, part, None)
    except Exception:  # a module's own __getattr__ failing: not found there
        return False
    return found is new


def _same_codec(old: Any, new: Any) -> bool:
    """Whether ``new`` is another instance of the codec ``old``: same class (or the
    class defined again), name, magic and extensions."""
    return (
        old is not None
        and _same_class(type(old), type(new))
        and old.magic == new.magic
        and tuple(old.extensions) == tuple(new.extensions)
    )


def _same_wrapper(old: Any, new: Any) -> bool:
    """Whether ``new`` is another instance of the wrapper ``old``: same class, name and
    types (each the same class, or the class defined again)."""
    return (
        old is not None
        and _same_class(type(old), type(new))
        and len(old.types) == len(new.types)
        and all(map(_same_class, old.types, new.types))
    )


def _way_out(source: str, action: str) -> str:
    """How to settle a conflict: code can force, an installed plugin cannot."""
    if source.startswith("register_"):
        return f"pass force=True to {action}"
    return f"uninstall one, or block one with {DISABLE_ENV}=<plugin> (see `arraypickle plugins`)"


# -- building ---------------------------------------------------------------------

_lock = threading.RLock()
_registry: Registry | None = None
# Bumped by reset(): a build that began before it does not publish its result.
_generation = 0
# Per thread, the registry that thread is building. A plugin that calls arraypickle
# while the thread imports it (its own register_codec, say) gets it, not a second build.
_local = threading.local()
# What register_codec/register_wrapper put into a registry not (yet) published (kind,
# item, force): the build that publishes replays it. Replaying is harmless for what
# that build holds already (the same object registered again changes nothing).
_pending: list[tuple[str, Any, bool]] = []


@dataclass
class _Loaded:
    """A plugin imported but not yet registered. ``plugin`` is None when it is blocked
    (``info.status`` says so) or failed to import: ``failure`` then says why, and the
    build warns with it."""

    info: PluginInfo
    plugin: Any = None
    failure: str | None = None
    # The module is still being imported (by this thread, or by one that deadlocked
    # with it): its hooks may not exist yet.
    partial: bool = False


def get_registry() -> Registry:
    """The process-wide registry, built on first call."""
    global _registry
    registry = _registry
    if registry is not None:
        return registry
    building = getattr(_local, "building", None)
    if building is not None:  # re-entered from a plugin's import or hook, in this thread
        return building
    _local.building = building = Registry()
    generation = _generation
    try:
        # Plugins are imported before the lock is taken, never under it: a thread that
        # imports a plugin module registering at import holds that module's import lock
        # while it waits for ours, so waiting for the import under ours would deadlock.
        loaded = _load_plugins()
        # A registry built while a plugin module is half imported lacks the hooks the
        # module defines later: it serves this call (the module's own register_codec)
        # but is not published, and the next call builds again.
        final = generation == _generation and not any(entry.partial for entry in loaded)
        with _lock:
            if _registry is not None:  # another thread built it while this one imported
                registry = _registry
            else:
                registry = _build(loaded, registry=building, warn=final)
                if not final:
                    return registry
                _registry = registry
            _replay(registry)
            return registry
    finally:
        _local.building = None


def reset() -> None:
    """Forget the registry; the next use scans plugins again (for tests and the CLI)."""
    global _registry, _generation
    with _lock:
        _registry = None
        _generation += 1
        _pending.clear()


def blocked_names() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def survey() -> Registry:
    """A registry built afresh that records conflicts instead of raising them (for
    ``arraypickle plugins``: the command that explains a conflict must not fail on it)."""
    loaded = _load_plugins()
    with _lock:
        return _build(loaded, strict=False)


def _load_plugins() -> list[_Loaded]:
    """Import every plugin not blocked, built-ins first, then entry points by name."""
    blocked = blocked_names()
    version = _own_version()
    candidates: list[tuple[str, str, str, str, Any]] = [
        (name, module, "arraypickle", version, None) for name, module in BUILTIN_PLUGINS.items()
    ]
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        candidates.append(
            (ep.name, ep.value, dist.name if dist else "?", dist.version if dist else "?", ep)
        )
    loaded: list[_Loaded] = []
    for name, module, dist, ver, ep in candidates:
        entry = _Loaded(PluginInfo(name, module, dist, ver, "loaded"))
        loaded.append(entry)
        if name in blocked:
            entry.info.status, entry.info.reason = "blocked", f"listed in {DISABLE_ENV}"
            continue
        try:
            entry.plugin = ep.load() if ep is not None else importlib.import_module(module)
        except Exception as exc:
            if type(exc).__name__ == "_DeadlockError":  # importlib's, between two imports
                entry.partial = True
            else:
                entry.failure = f"{type(exc).__name__}: {exc}"
        else:
            entry.partial = _importing(module.partition(":")[0])
    return loaded


def _importing(module: str) -> bool:
    spec = getattr(sys.modules.get(module), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _build(
    loaded: list[_Loaded], strict: bool = True, registry: Registry | None = None, warn: bool = True
) -> Registry:
    registry = Registry() if registry is None else registry
    manager = pluggy.PluginManager("arraypickle")
    manager.add_hookspecs(hookspecs)
    plugins: dict[str, tuple[PluginInfo, Any]] = {}
    for entry in loaded:
        info, plugin = entry.info, entry.plugin
        registry.plugins.append(info)
        if info.status == "blocked":
            manager.set_blocked(info.name)
            continue
        if entry.failure is not None:
            _fail(info, entry.failure, "failed to load and is skipped", warn)
            continue
        if plugin is None:  # deadlocked with another thread's import: the next build has it
            info.status, info.reason = "failed", "still being imported"
            continue
        if info.name in plugins:
            _fail(info, f"another plugin is already named {info.name!r}", warn=warn)
            continue
        try:
            manager.register(plugin, name=info.name)
        except Exception as exc:
            _fail(info, f"{type(exc).__name__}: {exc}", "failed to load and is skipped", warn)
            continue
        unknown = sorted(c.name for c in manager.get_hookcallers(plugin) or () if c.spec is None)
        if unknown:
            # pluggy accepts any hookimpl name; a misspelt one would do nothing, silently.
            manager.unregister(plugin)
            known = ", ".join(sorted(HOOKS))
            _fail(
                info, f"implements unknown hook(s) {', '.join(unknown)} (known: {known})", warn=warn
            )
            continue
        plugins[info.name] = info, plugin
    for info, plugin in plugins.values():  # built-ins first, then entry points by name
        _collect(manager, registry, info, plugin, strict, warn)
    return registry


def _fail(info: PluginInfo, reason: str, what: str = "is skipped", warn: bool = True) -> None:
    info.status, info.reason = "failed", reason
    if warn:
        warn_caller(f"arraypickle plugin {info.name!r} ({info.distribution}) {what}: {reason}")


def _collect(
    manager: pluggy.PluginManager,
    registry: Registry,
    info: PluginInfo,
    plugin: Any,
    strict: bool,
    warn: bool = True,
) -> None:
    """Register one plugin's codecs and wrappers, all or none of them: a plugin whose
    hook raises or returns something malformed spoils only itself."""
    found: dict[str, list[Any]] = {"codecs": [], "wrappers": []}
    for caller in manager.get_hookcallers(plugin) or ():
        kind = HOOKS.get(caller.name)
        impl = next((i for i in caller.get_hookimpls() if i.plugin is plugin), None)
        if kind is None or impl is None:
            continue
        try:
            items = impl.function()
            if items is None:
                # A forgotten ``return`` would register nothing without a word.
                _fail(info, f"{caller.name} returned None (return [] to provide none)", warn=warn)
                return
            items = list(items)
        except Exception as exc:
            _fail(info, f"{caller.name} raised {exc!r}", warn=warn)
            return
        for item in items:
            problems = (
                codec_problems(item)
                if kind == "codecs"
                else ([] if wrapper_is_wellformed(item) else [WRAPPER_NEEDS])
            )
            if problems:
                _fail(info, f"{caller.name} returned {item!r}: {'; '.join(problems)}", warn=warn)
                return
        found[kind] = items
    source = f"plugin {info.name!r} ({info.distribution})"
    before = registry._state()
    try:
        for codec in found["codecs"]:
            registry.add_codec(codec, source)
        for wrapper in found["wrappers"]:
            registry.add_wrapper(wrapper, source)
    except PluginConflictError as exc:
        if strict:
            raise
        registry._restore(before)
        info.status, info.reason = "failed", f"conflict: {exc}"
        registry.conflicts.append(str(exc))
        return
    info.codecs = [c.name for c in found["codecs"]]
    info.wrappers = [w.name for w in found["wrappers"]]


HOOKS = {"arraypickle_register_codecs": "codecs", "arraypickle_register_wrappers": "wrappers"}


def _own_version() -> str:
    from ._version import __version__

    return __version__


# -- public API -------------------------------------------------------------------


def codecs() -> dict[str, Any]:
    """The installed codecs by name, built-in and from plugins.

    Examples:

        >>> {"zlib", "gzip", "bz2", "lzma", "xz"} <= set(arraypickle.codecs())  # built in
        True
        >>> "lz4" in arraypickle.codecs()  # with arraypickle-lz4 installed
        True
    """
    return dict(get_registry().codecs)


def wrappers() -> dict[str, Any]:
    """The installed array wrappers by name, the built-in ``numpy`` and plugins'.

    A file that holds objects of a wrapper not listed here fails to load with
    :class:`arraypickle.UnknownWrapperError`.

    Examples:

        >>> "numpy" in arraypickle.wrappers()
        True
        >>> arraypickle.wrappers()["numpy"].types[0] is numpy.ndarray
        True
    """
    return dict(get_registry().wrappers)


def register_codec(codec: Any, force: bool = False) -> None:
    """Register ``codec`` from code, next to the plugins' codecs.

    Parameters:
        codec: an object with ``name``, ``magic``, ``extensions``, ``open_writer`` and
            ``open_reader`` (see :mod:`arraypickle.codec`).
        force: replace installed codecs that claim the same name, extension or magic
            instead of raising :class:`PluginConflictError`. Not needed to replace
            another instance of the same codec, its class defined again included (a
            notebook cell run twice): that replaces it.

    Examples:

        >>> class MyCodec(arraypickle.codec.Codec):  # the README's "Your own codec"
        ...     name, magic, extensions = "mycodec", b"MYC1", (".myc",)
        ...     # open_writer and open_reader: see arraypickle.codec
        >>> arraypickle.register_codec(MyCodec())
        >>> arraypickle.dump({"x": 1}, "data.pkl", compress=("mycodec", 5))
    """
    _register("codec", codec, force)


def register_wrapper(wrapper: Any, force: bool = False) -> None:
    """Register an array wrapper from code (see :mod:`arraypickle.wrapper`).

    Parameters:
        wrapper: an object with ``name``, ``types``, ``expose`` and ``rebuild``.
        force: replace an installed wrapper of the same name, or claiming the same
            types, instead of raising :class:`PluginConflictError`. Not needed to
            replace another instance of the same wrapper, its classes defined again
            included (a notebook cell run twice): that replaces it.

    Examples:

        >>> from mypackage import BlobWrapper  # as in arraypickle.wrapper's docstring
        >>> arraypickle.register_wrapper(BlobWrapper())
    """
    _register("wrapper", wrapper, force)


def _register(kind: str, item: Any, force: bool) -> None:
    force = as_flag("force", force)
    registry = get_registry()
    with _lock:
        _add(registry, kind, item, force)
        if registry is not _registry:  # a build in progress, or one not published
            _pending.append((kind, item, force))


def _add(registry: Registry, kind: str, item: Any, force: bool) -> None:
    if kind == "codec":
        registry.add_codec(item, "register_codec()", force=force)
    else:
        registry.add_wrapper(item, "register_wrapper()", force=force)


def _replay(registry: Registry) -> None:
    """Register into ``registry``, being or already published, what went into registries
    that were not: a plugin's register_codec at import, while some build was running.
    A conflict raises, as it would have where the call was made."""
    calls = list(_pending)
    _pending.clear()
    for kind, item, force in calls:
        _add(registry, kind, item, force)
