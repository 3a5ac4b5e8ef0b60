"""Safe loading: the policy that checks a file's globals, before and during the load.

Two checks, one list (:mod:`._allowlist` plus the caller's ``trusted``):

1. before anything runs, :mod:`._scan` lists every global the opcode stream names,
   and any that is not allowed raises :class:`UntrustedTypeError` naming all of them;
2. during the load, the unpickler's ``find_class`` asks :meth:`Policy.find_class`,
   which refuses the same names (defense in depth: a file changed between the scan
   and the load, or a scanner bug, still cannot import anything).
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

from . import _detect, _joblib_zf
from ._allowlist import allowed, normalize, trusted_names
from ._errors import (
    CorruptFileError,
    InvalidArgumentError,
    UntrustedTypeError,
    as_flag,
)
from ._scan import GETATTR, JoblibScanner, OpcodeScanner, ScanError
from ._scansource import BlockSource, ChunkReader, ExactSource
from ._streams import Guarded, is_seekable, remaining_size
from ._typing import Path, Readable

# A plain pickle read from a stream that cannot seek back is copied aside while it
# is scanned; past this size the copy goes to a temporary file.
SPOOL_MEMORY = 64 << 20
# Policy._listed's answer for a name trusted as a string: look it up.
_BY_NAME = object()


class Policy:
    """The allow-list plus ``trusted``: which dotted names a file may import."""

    def __init__(self, trusted: Any = None) -> None:
        self.file = "<file>"  # named in errors raised during the load; set by the loader
        self._allowed = allowed()
        extra = trusted_names(trusted)
        self._trusted_objects = {k: v for k, v in extra.items() if v is not None}
        self._trusted_names = {k for k, v in extra.items() if v is None}

    def is_allowed(self, dotted: str) -> bool:
        return (
            dotted in self._trusted_objects
            or dotted in self._trusted_names
            or dotted in self._allowed
        )

    def untrusted(self, names: Iterable[str]) -> list[str]:
        """The names not allowed, sorted."""
        return sorted(n for n in set(names) if not self.is_allowed(n))

    def refuse(self, file: str, names: list[str], when: str) -> UntrustedTypeError:
        shown = ", ".join(names)
        return UntrustedTypeError(
            f"{file}: refusing to load: {when} {len(names)} global(s) that are neither "
            f"allow-listed nor trusted: {shown}. If you trust this file's source, pass "
            f"trusted=[...] with those names (see docs/security.md)",
            names,
        )

    def check(self, names: Iterable[str], file: str) -> None:
        """Raise :class:`UntrustedTypeError` listing every name not allowed."""
        bad = self.untrusted(names)
        if bad:
            raise self.refuse(file, bad, "it names")

    def check_opcodes(self, chunks: Iterable[Any], file: str) -> None:
        """Scan a container's PICKLE payloads (in memory) and refuse what is not allowed."""
        reader = ChunkReader(chunks)
        self.check(scan_names(BlockSource(reader.read, reader.skip), file, policy=self), file)

    def find_class(self, module: str, name: str, fallback: Callable[[str, str], Any]) -> Any:
        """The object for a global, or :class:`UntrustedTypeError`; never an import of an
        unlisted name. ``fallback`` (the unpickler's own) resolves names trusted by string."""
        dotted = normalize(module, name)
        obj = self._listed(dotted)
        if obj is _BY_NAME:
            return fallback(module, name)  # here: _damage reads a failure's frame
        if obj is not self:
            return obj
        if dotted == GETATTR:
            return functools.partial(self._attribute_of_global, fallback)
        raise self.refuse(self.file, [dotted], "during the load, it tried to import")

    def _listed(self, dotted: str) -> Any:
        """What the policy gives for ``dotted``: a trusted object, :data:`_BY_NAME` for
        a name trusted as a string (to be looked up), or an allow-listed object;
        ``self`` when none."""
        obj = self._trusted_objects.get(dotted, self)
        if obj is not self:
            return obj
        if dotted in self._trusted_names:
            return _BY_NAME
        return self._allowed.get(dotted, self)

    def _attribute_of_global(self, fallback: Callable[[str, str], Any], obj: Any, name: Any) -> Any:
        """``getattr`` as safe loading hands it out: only ``getattr(<global>, '<name>')``,
        which picklers write for an attribute of a global (a classmethod in a reduction),
        and which the scan lists as the global ``<global>.<name>``. It is looked up as
        that name would be, so it is allowed exactly when the name is."""
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if type(module) is str and type(qualname) is str and type(name) is str:
            try:
                owner = self.find_class(module, qualname, fallback)
            except UntrustedTypeError:
                owner = None
            if owner is obj:
                dotted = normalize(module, f"{qualname}.{name}")
                found = self._listed(dotted)
                if found is _BY_NAME:
                    return getattr(obj, name)
                if found is not self:
                    return found
                raise self.refuse(self.file, [dotted], "during the load, it tried to import")
        raise self.refuse(self.file, [GETATTR], "during the load, it tried to call")


def make_policy(safe: bool, trusted: Any) -> Policy | None:
    """The policy ``load(safe=..., trusted=...)`` asks for (None: an ordinary load)."""
    if not as_flag("safe", safe) and trusted is None:
        return None
    return Policy(trusted)


def scan_names(
    source: BlockSource, file: str, joblib: bool = False, policy: Policy | None = None
) -> set[str]:
    """The dotted names of the globals one pickle stream from ``source`` names
    (``joblib``: the stream may be a joblib file, arrays' bytes between opcodes).

    A state or call safe loading refuses raises :class:`CorruptFileError`, unless
    the stream also names globals ``policy`` does not allow: then those are reported
    (:class:`UntrustedTypeError`), as the first thing to know about the file."""
    scanner = JoblibScanner() if joblib else OpcodeScanner()
    try:
        scanner.scan(source)
    except ScanError as exc:
        raise CorruptFileError(f"{file}: not a valid pickle stream: {exc}") from None
    if scanner.refused is not None:
        if policy is not None:
            policy.check(scanner.names, file)
        raise CorruptFileError(
            f"{file}: refusing to load: {scanner.refused} (no pickler writes this; see "
            "docs/security.md)"
        )
    return scanner.names


def checked_plain(stream: Any, file: str, policy: Policy) -> tuple[Any, Any]:
    """Scan the plain pickle at ``stream``'s position; return what to unpickle from.

    A seekable stream is scanned and sought back. Otherwise the stream is read
    exactly up to the pickle's STOP, copied aside (in memory, then a temporary
    file past :data:`SPOOL_MEMORY`), and the copy is returned with a closer.
    """
    if is_seekable(stream):
        start = stream.tell()
        try:
            source = BlockSource(stream.read, _seeker(stream))
            names = scan_names(source, file, joblib=True, policy=policy)
        finally:
            stream.seek(start)
        policy.check(names, file)
        return stream, None
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 (returned open)
    try:
        source = ExactSource(stream.read, getattr(stream, "readline", None), spool.write)
        policy.check(scan_names(source, file, joblib=True, policy=policy), file)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool, spool.close


def _seeker(stream: Any) -> Callable[[int], None]:
    def skip(n: int) -> None:
        try:
            stream.seek(n, os.SEEK_CUR)
        except (OSError, OverflowError, ValueError):
            # A length no file holds (2**63 from 8 bytes of damage): past the end.
            raise ScanError(f"truncated: data of {n:,} bytes runs past the end") from None

    return skip


def scan_container(stream: Any, file: str, policy: Policy | None = None) -> set[str]:
    """Names in the container at ``stream``'s position; buffers skipped (sought past
    when the stream can seek), never read into memory."""
    # Imported here: only get_untrusted_types walks containers, and a load need not
    # pay for importing the walker ``info`` uses.
    from ._symbolic import ContainerSource, SymbolicError

    try:
        records = ContainerSource(stream, file, remaining_size(stream), list_buffers=False)
        names = scan_names(BlockSource(records.read, records.skip), file, policy=policy)
        records.finish()  # to END, whose counts must match, as a load checks them
        return names
    except SymbolicError as exc:  # the records around the opcodes are damaged
        raise CorruptFileError(f"{file}: {exc}") from None


def scan_plain(stream: Any, file: str, policy: Policy | None = None) -> set[str]:
    skip = _seeker(stream) if is_seekable(stream) else None
    return scan_names(BlockSource(stream.read, skip), file, joblib=True, policy=policy)


def get_untrusted_types(
    file: Path | Readable | bytes | bytearray | memoryview,
    trusted: Iterable[Any] | None = None,
    *,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """The globals a file names that safe loading would refuse, found without running it.

    The opcodes are walked, never executed: ``GLOBAL``, ``INST``/``OBJ``,
    ``STACK_GLOBAL`` (with names passed through the memo) and extension codes are
    collected; a name that cannot be known statically is listed as
    ``'<unresolved>'``. Works on arraypickle files (with any installed codec; array
    buffers are skipped, sought past when the file can seek), plain pickles and
    compressed plain pickles. In-band data is skipped, never held.

    Parameters:
        file: a path or URL (``s3://...``, as for :func:`arraypickle.load`), a
            readable binary file object (read from its position, and left there
            when it can seek, so that a load can follow; a stream that cannot seek
            is consumed), or the bytes of a file.
        trusted: names to treat as allowed, as for :func:`arraypickle.load`.
        storage_options: for a URL, options of its fsspec filesystem.

    Returns:
        The sorted ``'module.qualname'`` names that are neither allow-listed nor
        trusted; an empty list when ``load(file, safe=True, trusted=trusted)`` would
        accept the file. One exception: the object arrays of joblib 0.8-0.9 in
        companion ``.npy`` files beside the file are not read here; a safe load scans
        each before unpickling it.

    Raises:
        CorruptFileError: the file is damaged, or sets a state safe loading refuses
            whatever is trusted (a state on a class itself, a forged numpy dtype, an
            object array whose list is shorter than its shape).
        InvalidArgumentError: ``file`` is none of the above, or a text, closed or
            non-blocking file object.

    Examples:

        >>> arraypickle.get_untrusted_types("model.pkl")
        ['sklearn.ensemble._forest.RandomForestClassifier', ...]
        >>> names = arraypickle.get_untrusted_types("model.pkl")
        >>> model = arraypickle.load("model.pkl", trusted=names)  # after reading them
    """
    from ._plugins import get_registry

    policy = Policy(trusted)
    registry = get_registry()
    if isinstance(file, (bytes, bytearray, memoryview)):
        return _scan_any(io.BytesIO(file), "<bytes>", registry, policy)
    if isinstance(file, (str, os.PathLike)):
        path = os.fspath(file)
        if not isinstance(path, str):
            raise InvalidArgumentError(f"file names must be str or os.PathLike[str], got {file!r}")
        from ._remote import reading

        with reading(path, storage_options) as f:
            return _scan_any(f, repr(path), registry, policy)
    if callable(getattr(file, "read", None)):
        from ._api import _check_binary  # text, closed, write-only, non-blocking files
        from ._errors import describe

        _check_binary(file, "reading")
        start = file.tell() if is_seekable(file) else None
        try:
            return _scan_any(file, describe(file), registry, policy)
        finally:
            if start is not None:
                file.seek(start)
    raise InvalidArgumentError(
        "get_untrusted_types expects a filename, a readable binary file object or bytes, "
        f"{file!r} (type {type(file).__name__}) was given."
    )


def _scan_any(
    stream: Any, name: str, registry: Any, policy: Policy, inner: bool = False
) -> list[str]:
    """The names ``policy`` does not allow, in whatever format ``stream`` holds."""
    found = _detect.detect(stream, name, registry, inner=inner)
    if found.kind == _detect.CONTAINER:
        return _untrusted(scan_container, found.stream, name, policy)
    if found.kind == _detect.JOBLIB_ZF:  # joblib 0.8.4-0.9's zlib framing
        zf = _joblib_zf.open_zf(found.stream, name)
        try:
            return _untrusted(scan_plain, Guarded(zf, name, "joblib zlib"), name, policy)
        finally:
            zf.close()
    if found.kind == _detect.COMPRESSED:
        with _detect.decoded(found.stream, name, found.codec) as decoded:
            return _scan_any(decoded, name, registry, policy, True)
    return _untrusted(scan_plain, found.stream, name, policy)


def _untrusted(scan: Callable[..., set[str]], stream: Any, name: str, policy: Policy) -> list[str]:
    try:
        return policy.untrusted(scan(stream, name, policy))
    except UntrustedTypeError as exc:  # also a refused state: the names come first
        return exc.names
    except RecursionError:  # tuples nested thousands deep, in a dtype state say
        raise CorruptFileError(f"{name}: objects nested too deep to scan") from None
