"""The codec contract: compressed streams that wrap a whole container.

A codec is any object with these five members (:class:`Codec` is a convenient base
that adds optional capabilities):

``name: str``
    What users pass as ``compress=name`` or ``compress=(name, level)`` (and the CLI's
    ``--compress NAME[:LEVEL]``): lowercase letters, digits and ``_.+-``, a letter or
    digit first; not ``none``, ``no``, ``false`` or a number.
``magic: bytes``
    The first bytes of every stream the codec writes. Loading detects the codec by
    them, never by the file name. No magic may be a prefix of another codec's magic,
    of the container's (``89 41 50 4B 0D 0A 1A 0A``), of a pickle's (``80``) or of
    joblib 0.8.4-0.9's zlib framing (``5A 46``, "ZF").
``extensions: tuple[str, ...]``
    File name endings, dot included (``(".gz",)``). ``dump(obj, "f.gz")`` picks the
    codec that claims the ending. Dots and letters, digits or ``_+-`` (``.tar.gz``);
    never ``.pkl``, ``.pickle``, ``.joblib`` or ``.npy``.
``open_writer(fileobj, level: int) -> writable binary file``
    ``level`` is 1..9 (0, no compression, never reaches a codec). Closing the writer
    finishes the stream (writes the trailer) and leaves ``fileobj`` open. The writer
    must have consumed ``data`` when ``write(data)`` returns, and should hold bounded
    memory whatever the size of ``data``.
``open_reader(fileobj) -> readable binary file``
    ``fileobj`` is positioned at the first byte of the magic. Its reads may be short:
    readers must treat only ``b''`` (0 from ``readinto``) as the end of the input, and
    read no more of it than they need for what they are asked (a socket's sender may
    be waiting for an answer). ``read``/``readinto`` return decompressed bytes, fewer
    only at the end of the stream; a stream that
    ends early or is damaged raises :class:`arraypickle.CorruptFileError` (other
    exceptions are converted to it). Closing the reader leaves ``fileobj`` open.

Optional members, used when present:

``default_level: int``
    The level used for ``compress=name``: 1 to 9 (3 when absent; a codec declaring
    another is refused).
``distribution: str``
    The distribution that provides the codec, for its own reports: ``arraypickle
    plugins`` names the distribution of the entry point that provided it.
``parallel: bool``
    When true, ``open_writer`` and ``open_reader`` also accept a keyword ``threads``
    (an int >= 1; 1 when absent): how many threads the codec may use, at most, for
    one stream. ``dump(..., threads=n)`` and ``load(..., threads=n)`` pass it (by
    default every usable core); codecs without the flag get no ``threads``. With
    ``threads=1`` a codec starts no thread. The stream must decode to the same bytes
    whatever ``threads`` was, and should be the same bytes (arraypickle's own codecs'
    are). Worker threads must not touch ``fileobj``: only the calling thread reads
    and writes it.
``writer.write_array(data, itemsize)``
    On the object ``open_writer`` returns: called instead of ``write`` for array
    buffers, with the size of one element, for codecs that shuffle or delta-code by
    element (blosc). ``len(data)`` is a multiple of ``itemsize``.
``reader.finish_stream() -> int | None``
    On the object ``open_reader`` returns. Loading from a file object calls it once
    the container has ended, instead of reading on to check that nothing follows:
    read the rest of the codec stream that holds the object (its trailer or end
    frame, checked) and nothing after it, raise :class:`arraypickle.CorruptFileError`
    if that stream holds more data, and return how many bytes of ``fileobj`` were
    read past the stream's end (None: unknown). arraypickle seeks a file object that
    can seek back over them, so that the next object dumped into the same file
    loads; from a pipe or a socket they are lost, and the next load says so.
    Without it (or with None), a seekable file is read on to check that its stream
    holds nothing more, and a further object sent on the same connection cannot
    load. Loads by path or from ``bytes`` never call it: a file is one object there.
``reader.read_size: int``
    On the object ``open_reader`` returns: the size of ``readinto`` calls at which
    the reader decodes whole frames straight into the caller's buffer (and several
    at once). arraypickle then reads array payloads in pieces of that size (at most
    64 MiB) instead of 2 MiB; ``readinto`` must still fill the buffer before it
    returns.

The types of those files, for annotations (structural: any object with the methods
fits, ``io`` classes and the helpers below included):

:class:`Writable` and :class:`Readable`
    What ``open_writer`` and ``open_reader`` are given: ``write(data)``, ``read(size)``.
:class:`WriterStream` and :class:`ReaderStream`
    What they return: the same, with ``close()``.

Helpers for codecs over a streaming library (the built-in codecs use them):

:class:`CompressWriter` ``(fileobj, compressor, *, magic=b"")``
    The writer to return from ``open_writer`` when the library has a compressor
    object with ``compress(data) -> bytes`` and ``flush() -> bytes`` (as
    ``zlib.compressobj()`` and ``bz2.BZ2Compressor`` have). It feeds the data in
    bounded pieces, after ``magic`` when the compressor's output does not start
    with the codec's magic by itself.
:class:`DecompressReader` ``(fileobj, new_decompressor, *, codec, multistream)``
    The reader to return from ``open_reader`` when the library has a decompressor
    with the interface of ``bz2.BZ2Decompressor``: ``decompress(data, max_length)``,
    ``needs_input``, ``eof`` and ``unused_data``. ``new_decompressor()`` makes one;
    with ``multistream``, streams that follow one another read as one. It raises
    :class:`arraypickle.CorruptFileError` for truncated or damaged streams.
:class:`Inflater` ``(wbits)``
    ``zlib.decompressobj(wbits)`` with that interface (zlib's own has no
    ``needs_input``): ``DecompressReader(f, lambda: Inflater(-15), ...)`` reads raw
    deflate.

The parallel machinery (``docs/plugins.md``, "Parallel codecs", shows a whole codec):

:class:`ChunkedWriter` ``(fileobj, threads)``
    A writer that gathers small writes into chunks of ``chunk_size`` bytes and cuts
    large ones, compresses each chunk on ``threads`` threads with the callable its
    subclass's ``job(chunk, itemsize, last)`` returns, and writes the results in
    order (``emit``), then the trailer (``finish``). It keeps the ``write`` contract
    above and bounds memory to a few chunks per thread.
:class:`FramedReader` ``(fileobj, threads)`` and :class:`Frame`
    A reader over independent frames: the subclass's ``next_frame()`` reads one
    (``take``, ``peek``), ``decode_into(frame, out)`` decodes it into exactly
    ``frame.size`` bytes on a worker thread, straight into the caller's buffer when
    it fits; ``stream(frame)`` serves frames of unknown size. It has ``read_size``.
:class:`Pipeline` ``(threads, sink)``
    The ordered, bounded job pipeline both are built on, for other designs.
:class:`ReadAhead` ``(fileobj, produce)``
    Runs a decoder that can only go in sequence on one helper thread, ahead of its
    reader, the caller's thread feeding it the file's bytes.
:func:`copy_into` ``(out, data)``
    ``out[:] = data`` without holding the GIL for large copies (for ``decode_into``).
:func:`skip_magic` ``(fileobj, magic, codec)``
    Reads the magic at the start of ``open_reader``'s file, however short its reads,
    for a codec whose decoder does not take the magic itself.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ._cores import usable_cores
from ._errors import CorruptFileError, describe
from ._parallel import (
    ChunkedWriter,
    Frame,
    FramedReader,
    Pipeline,
    ReadAhead,
    copy_into,
)
from ._stdcodecs._stream import CompressWriter, DecompressReader, Inflater
from ._streams import read_full
from ._typing import Readable, ReaderStream, Writable, WriterStream

__all__ = [
    "DEFAULT_LEVEL",
    "ChunkedWriter",
    "Codec",
    "CodecLike",
    "CompressWriter",
    "DecompressReader",
    "Frame",
    "FramedReader",
    "Inflater",
    "Pipeline",
    "ReadAhead",
    "Readable",
    "ReaderStream",
    "Writable",
    "WriterStream",
    "copy_into",
    "default_level",
    "skip_magic",
    "usable_cores",
]

DEFAULT_LEVEL = 3


@runtime_checkable
class CodecLike(Protocol):
    """The five members every codec has (read-only here: class attributes do)."""

    @property
    def name(self) -> str: ...

    @property
    def magic(self) -> bytes: ...

    @property
    def extensions(self) -> tuple[str, ...]: ...

    def open_writer(self, fileobj: Writable, level: int) -> WriterStream: ...

    def open_reader(self, fileobj: Readable) -> ReaderStream: ...


class Codec:
    """Base class for codecs; subclasses set the attributes and the two openers.

    What each member means is the contract in this module's docstring; the base gives
    the optional ones their defaults (level 3, one thread).

    Example::

        >>> class RawDeflate(Codec):  # deflate without zlib's header, behind a magic
        ...     name, magic, extensions = "rawdeflate", b"RDF1", (".rdf",)
        ...
        ...     def open_writer(self, fileobj, level):
        ...         deflater = zlib.compressobj(level, wbits=-15)
        ...         return CompressWriter(fileobj, deflater, magic=self.magic)
        ...
        ...     def open_reader(self, fileobj):
        ...         skip_magic(fileobj, self.magic, self.name)
        ...         return DecompressReader(
        ...             fileobj, lambda: Inflater(-15), codec=self.name, multistream=False
        ...         )
    """

    name: str = ""
    magic: bytes = b""
    extensions: tuple[str, ...] = ()
    default_level: int = DEFAULT_LEVEL
    distribution: str = "arraypickle"
    parallel: bool = False

    def open_writer(self, fileobj: Writable, level: int) -> WriterStream:
        """A writable stream compressing into ``fileobj`` (the magic first).

        Args:
            fileobj: Where the compressed stream goes; left open by ``close``.
            level: 1..9 (no compression never reaches a codec).

        Returns:
            A file whose ``write`` has consumed its data when it returns, and whose
            ``close`` finishes the stream (``CompressWriter`` and ``ChunkedWriter``
            are such files).
        """
        raise NotImplementedError

    def open_reader(self, fileobj: Readable) -> ReaderStream:
        """A readable stream decompressing ``fileobj``, positioned at the magic.

        Args:
            fileobj: The compressed stream; its reads may be short. Left open by
                ``close``.

        Returns:
            A file whose ``read``/``readinto`` give decompressed bytes, fewer only at
            the end, and raise ``CorruptFileError`` for a damaged or truncated
            stream (``DecompressReader`` and ``FramedReader`` are such files).
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def default_level(codec: Any) -> int:
    """The level ``compress=codec.name`` means for ``codec``."""
    level = getattr(codec, "default_level", DEFAULT_LEVEL)
    return level if isinstance(level, int) and 1 <= level <= 9 else DEFAULT_LEVEL


def skip_magic(fileobj: Readable, magic: bytes, codec: str) -> None:
    """Read ``magic`` from ``fileobj``, positioned at its first byte.

    For an ``open_reader`` whose decoder starts after the magic. The reads may be
    short (a socket hands out what has arrived), so one ``read(len(magic))`` may not
    take it all.

    Args:
        fileobj: The file ``open_reader`` was given.
        magic: The codec's magic.
        codec: The codec's name, for the error message.

    Raises:
        CorruptFileError: The file ends inside the magic or holds other bytes.

    Example::

        def open_reader(self, fileobj):
            skip_magic(fileobj, self.magic, self.name)
            return DecompressReader(fileobj, MyDecompressor, codec=self.name, multistream=False)
    """
    got = read_full(fileobj, len(magic))
    if got != magic:
        raise CorruptFileError(
            f"{describe(fileobj)}: {codec} stream does not start with its magic "
            f"{magic.hex(' ')} (found {got.hex(' ') or 'the end of the file'})"
        )
