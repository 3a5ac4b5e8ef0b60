"""Remote stores: paths with a protocol (``s3://``, ``gcs://``, ``memory://``...) via fsspec.

A path is a URL when it starts with a protocol name of two or more characters followed
by ``://`` (or ``::``, fsspec's chaining). Windows drive letters (``C:\\...``) are one
character and never match. Such paths go through fsspec when it is installed; without
it they raise :class:`MissingDependencyError` naming ``pip install arraypickle[remote]``.

Streaming in bounded memory:

- reading: the fsspec file is opened without its read-ahead cache; small reads (record
  headers, opcodes) are served from a :data:`READ_BUFFER` buffer, buffer payloads are
  fetched in ranged requests of at most :data:`READ_PIECE` bytes straight into the
  array's memory. fsspec's own ``compression=`` is never applied: the format is
  detected from the first bytes, as for local files.
- writing: the container is written in one forward pass. Writes reach the fsspec file in
  pieces of at most :data:`WRITE_PIECE` bytes, and we ask for upload parts of
  :data:`WRITE_BLOCK` bytes (doubled every :data:`PARTS_PER_DOUBLING` parts, so an
  S3 upload stays under its 10,000-part limit up to terabytes).

Atomicity: on object stores (:data:`OBJECT_STORES`) an object appears only when its
upload is completed, at close; a failed dump discards the upload instead (for S3 the
multipart upload is aborted) and never closes the file, so neither a partial object nor
a dangling upload remains and an existing object is untouched. Other filesystems write
to a temporary key beside the target and move it over the target on success; on failure
the temporary key is removed. ``file://`` and ``local://`` URLs name local files and are
handled exactly like local paths (temporary file and rename, real ``mmap_mode``).
"""

from __future__ import annotations

import contextlib
import io
import re
import secrets
import sys
from collections.abc import Iterator
from typing import Any

from ._errors import InvalidArgumentError, MissingDependencyError
from ._memory import byte_view
from ._streams import readinto_of
from ._writer import write_all

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)(://|::)")

# Ranged GET size for buffer payloads, and the buffer for small reads.
READ_PIECE = 8 << 20
READ_BUFFER = 8 << 20
# Upload part size asked for (S3 requires at least 5 MiB, GCS multiples of 256 KiB),
# and the largest write handed to the fsspec file (its buffer holds a block plus this).
WRITE_BLOCK = 5 << 20
WRITE_PIECE = 1 << 20
PARTS_PER_DOUBLING = 1000

# Protocols whose files upload in parts that become visible only when the upload is
# completed at close, and whose fsspec file can discard an upload in progress.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"})
_LOCAL = frozenset({"file", "local"})
_HTTP = frozenset({"http", "https"})

# Install hints for the backends of common protocols (fsspec names them too, when present).
BACKENDS = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "adl": "adlfs",
    "oss": "ossfs",
    "hf": "huggingface_hub",
    "http": "aiohttp",
    "https": "aiohttp",
    "sftp": "paramiko",
    "ssh": "paramiko",
}


def url_protocol(path: str) -> str | None:
    """The protocol of ``path`` when it is a URL (``'s3'`` for ``s3://b/k``), else None.

    The first protocol of a chained URL (``simplecache::s3://b/k``) is returned; a
    chain that does not end in a URL must start with a protocol fsspec knows
    (``simplecache::/data/x.pkl``): ``model.v2::best.pkl`` is a local name, as for ``open``.
    Local paths, Windows drive paths included (``C:\\data\\x.pkl``, ``C:/x``), give None.

    Examples:

        >>> url_protocol("s3://bucket/model.pkl")
        's3'
        >>> url_protocol("C:\\\\models\\\\model.pkl") is None
        True
    """
    match = _URL.match(path)
    if match is None:
        return None
    protocol = match.group(1).lower()
    if match.group(2) == "::" and "://" not in path and not _is_fsspec_protocol(protocol):
        # A chain (fsspec's ``a::b``) whose first link is no protocol fsspec knows:
        # ``model.v2::best.pkl`` is a local file's name, which fsspec would resolve to
        # the file ``model.v2``. ``simplecache::/data/x.pkl`` is a URL.
        return None
    return protocol


def _is_fsspec_protocol(protocol: str) -> bool:
    try:
        from fsspec.registry import known_implementations, registry
    except ImportError:  # without fsspec nothing but a "://" URL can be one
        return False
    return protocol in known_implementations or protocol in registry


def locate(path: str, storage_options: dict[str, Any] | None) -> str | RemoteFile:
    """Where ``path`` lives: a local path (str) or a :class:`RemoteFile`.

    ``file://`` URLs come back as local paths. ``storage_options`` are passed to the
    fsspec filesystem; they are refused for local paths, where they would mean nothing.
    """
    protocol = url_protocol(path)
    if protocol is None:
        if storage_options:
            raise InvalidArgumentError(
                f"storage_options apply to URLs (s3://..., gcs://...); {path!r} is a local path"
            )
        return path
    fs, fs_path = _filesystem(path, protocol, storage_options or {})
    if _is_local(fs) and "::" not in path:
        if storage_options:
            raise InvalidArgumentError(
                f"storage_options apply to remote stores; {path!r} is a local file"
            )
        return fs_path
    return RemoteFile(fs, fs_path, path)


@contextlib.contextmanager
def reading(path: str, storage_options: dict[str, Any] | None = None) -> Iterator[Any]:
    """``path``, a local path or a URL (see :func:`locate`), open for binary reading."""
    target = locate(path, storage_options)
    if isinstance(target, str):
        with open(target, "rb") as f:
            yield f
    else:
        with target.reading() as f:
            yield f


def _filesystem(url: str, protocol: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    if not isinstance(storage_options, dict):
        raise InvalidArgumentError(
            f"storage_options must be a dict, got {type(storage_options).__name__}"
        )
    try:
        import fsspec.core
    except ImportError:
        raise MissingDependencyError(
            f"{url!r} is a URL (protocol {protocol!r}); remote stores need fsspec: "
            f"pip install arraypickle[remote]{_backend_hint(protocol, ' plus ')}"
        ) from None
    try:
        return fsspec.core.url_to_fs(url, **storage_options)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{url!r}: the fsspec backend for protocol {protocol!r} is not installed "
            f"({exc}){_backend_hint(protocol, '; ')}"
        ) from exc
    except ValueError as exc:
        if "Protocol not known" in str(exc):
            raise InvalidArgumentError(
                f"{url!r}: fsspec knows no protocol {protocol!r} (is its backend installed?)"
            ) from exc
        raise


def _backend_hint(protocol: str, sep: str) -> str:
    backend = BACKENDS.get(protocol)
    return f"{sep}pip install {backend}" if backend else ""


def _protocols(fs: Any) -> set[str]:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return set(protocols)


def _is_local(fs: Any) -> bool:
    return bool(_LOCAL & _protocols(fs))


class RemoteFile:
    """One file on an fsspec filesystem, opened for a streaming read or an atomic write."""

    def __init__(self, fs: Any, path: str, url: str) -> None:
        self.fs = fs
        self.path = path
        self.url = url

    def __repr__(self) -> str:
        return f"RemoteFile({self.url!r})"

    # -- reading --------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[io.BufferedReader]:
        """A buffered, seekable (when the store is) reader; closed on exit."""
        size = None
        if _protocols(self.fs) & _HTTP:
            # One streaming GET: servers need not support ranges, and the reader
            # never seeks (format sniffing works on streams).
            size = self.fs.info(self.path).get("size")
            f = self.fs.open(self.path, "rb", block_size=0, size=size)
        else:
            f = _open(self.fs, self.path, "rb", block_size=READ_PIECE, cache_type="none")
        try:
            yield SizedReader(Capped(f, READ_PIECE, self.url, size), buffer_size=READ_BUFFER)
        finally:
            f.close()

    # -- writing --------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[Any]:
        """A writable file whose content becomes the target only if the block succeeds."""
        if _protocols(self.fs) & OBJECT_STORES:
            with self._upload(self.path) as out:
                yield out
            return
        tmp = _temporary_key(self.path)
        try:
            with self._upload(tmp) as out:
                yield out
            self.fs.mv(tmp, self.path)
        except BaseException:
            with contextlib.suppress(Exception):
                if self.fs.exists(tmp):
                    self.fs.rm(tmp)
            raise

    @contextlib.contextmanager
    def _upload(self, path: str) -> Iterator[Any]:
        try:
            f = _open(self.fs, path, "wb", block_size=WRITE_BLOCK)
        except (NotImplementedError, ValueError) as exc:
            # http(s) raise the first; archives (tar://, "Read-only filesystem") the second.
            raise InvalidArgumentError(
                f"{self.url!r}: fsspec's {type(self.fs).__name__} cannot write files ({exc})"
            ) from exc
        try:
            yield Chunked(f, self.url)
        except BaseException:
            _abandon(f)
            raise
        try:
            f.close()
        except BaseException:
            _abandon(f)
            raise


def _open(fs: Any, path: str, mode: str, **options: Any) -> Any:
    """``fs.open`` with our buffering options, or without them where a backend refuses them."""
    try:
        return fs.open(path, mode, **options)
    except TypeError:
        return fs.open(path, mode)


def _abandon(f: Any) -> None:
    """Throw away a write in progress: never let a close (or ``__del__``) commit it."""
    discard = getattr(f, "discard", None)
    if callable(discard):
        with contextlib.suppress(Exception):
            discard()
    from fsspec.spec import AbstractBufferedFile  # there: f was opened through fsspec

    if isinstance(f, AbstractBufferedFile):
        # Its close() would upload the buffer and complete the upload.
        f.closed = True
        with contextlib.suppress(Exception):
            f.buffer = None
        return
    with contextlib.suppress(Exception):
        f.close()


def _temporary_key(path: str) -> str:
    head, sep, base = path.rpartition("/")
    return f"{head}{sep}.{base}.{secrets.token_hex(6)}.tmp"


def bounded_writer(fileobj: Any) -> Any:
    """``fileobj``, or a :class:`Chunked` over it when it is an fsspec buffered file.

    A caller's own ``fs.open(url, "wb")`` would otherwise buffer each array whole.
    """
    spec = sys.modules.get("fsspec.spec")  # never import fsspec for this
    if spec is not None and isinstance(fileobj, spec.AbstractBufferedFile):
        return Chunked(fileobj, getattr(fileobj, "path", "<fsspec file>"), grow=False)
    return fileobj


class Chunked:
    """Hands writes to an fsspec file in bounded pieces, growing its upload parts.

    fsspec's buffered files copy each ``write`` into their buffer whole and upload when
    it exceeds the block size: a 1 GB array written at once would be buffered whole.
    """

    def __init__(self, f: Any, name: str, *, grow: bool = True) -> None:
        self._f = f
        self._write = f.write
        self._written = 0
        blocksize = getattr(f, "blocksize", None)
        # Stores that want parts of one size (s3fs's fixed_upload_size, for R2) keep theirs.
        fixed = getattr(getattr(f, "fs", None), "fixed_upload_size", False)
        if grow and isinstance(blocksize, int) and not fixed:
            self._grow_at: int | None = blocksize * PARTS_PER_DOUBLING
        else:
            self._grow_at = None
        self.name = name

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = byte_view(data)
        total = len(view)
        if total <= WRITE_PIECE:
            self._put(view)
        else:
            for start in range(0, total, WRITE_PIECE):
                self._put(view[start : start + WRITE_PIECE])
        return total

    def _put(self, view: memoryview) -> None:
        write_all(self._write, view)
        self._written += len(view)
        if self._grow_at is not None and self._written >= self._grow_at:
            # Fewer, larger parts for big objects (S3 allows 10,000 parts).
            self._f.blocksize *= 2
            self._grow_at = self._written + self._f.blocksize * (PARTS_PER_DOUBLING // 2)

    def flush(self) -> None:
        """Nothing to do: parts are uploaded as they fill, the rest at commit."""

    def tell(self) -> int:
        return self._written

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return bool(getattr(self._f, "closed", False))


class Capped(io.RawIOBase):
    """A raw reader over an fsspec file that reads at most ``piece`` bytes per call.

    ``name`` (the URL) is what error messages show.
    """

    def __init__(self, f: Any, piece: int, name: str, size: int | None = None) -> None:
        super().__init__()
        self._f = f
        self._piece = piece
        self._readinto = readinto_of(f)
        if size is None:
            size = getattr(f, "size", None)
        self.size = size if isinstance(size, int) and not isinstance(size, bool) else None
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        try:
            return bool(self._f.seekable())
        except (AttributeError, OSError, ValueError):
            return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if len(view) > self._piece:
            view = view[: self._piece]
        if self._readinto is not None:
            return self._readinto(view) or 0
        data = self._f.read(len(view))
        view[: len(data)] = data
        return len(data)


class SizedReader(io.BufferedReader):
    """A buffered reader that states the size of the remote file (bounds declared sizes)."""

    @property
    def size(self) -> int | None:
        return self.raw.size
