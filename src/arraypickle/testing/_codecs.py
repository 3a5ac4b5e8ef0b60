"""The codec conformance kit: :class:`CodecConformance`, and the tools it runs."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraypickle
from arraypickle import _plugins
from arraypickle._errors import CorruptFileError
from arraypickle._streams import read_into, readinto_of

from ._files import Trickle, Unseekable, _Failing, load_from_kept_open_socket
from ._registry import registered
from ._samples import MiB, assert_same, big_array, sample_bytes, sample_object

__all__ = ["STDLIB_TOOLS", "CodecConformance", "Tool"]

#: Sizes (bytes) of the arrays round-tripped through each codec: empty, tiny, and
#: either side of the block sizes codecs and arraypickle use (64 KiB blocks, 256 KiB
#: reads, 1 MiB writes, 4 MiB chunks).
SIZES = (
    0,
    1,
    63,
    64,
    65,
    4095,
    65535,
    65536,
    65537,
    256 << 10,
    MiB - 1,
    MiB,
    MiB + 1,
    4 * MiB - 1,
    4 * MiB + 1,
)


@dataclass(frozen=True)
class Tool:
    """A codec's standard command-line tool, as two commands that filter stdin to stdout.

    Parameters:
        compress: the command that compresses stdin to stdout (``["gzip", "-c"]``).
        decompress: the command that decompresses stdin to stdout.

    Example::

        Tool(compress=["zstd", "-c", "-q"], decompress=["zstd", "-d", "-c", "-q"])
    """

    compress: Sequence[str]
    decompress: Sequence[str]

    def missing(self) -> str | None:
        """Why the tool cannot run here, or None when it can."""
        for command in (self.compress, self.decompress):
            if shutil.which(command[0]) is None:
                return f"{command[0]!r} is not installed"
        return None

    def run(self, which: str, src: str, dst: str) -> None:
        """Filter file ``src`` into file ``dst`` with the ``which`` command."""
        command = list(self.compress if which == "compress" else self.decompress)
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            done = subprocess.run(command, stdin=fin, stdout=fout, stderr=subprocess.PIPE)
        if done.returncode:
            raise AssertionError(f"{command} failed ({done.returncode}): {done.stderr!r}")


#: The standard tools of the built-in codecs (zlib's comes with qpdf).
STDLIB_TOOLS = {
    "zlib": Tool(["zlib-flate", "-compress"], ["zlib-flate", "-uncompress"]),
    "gzip": Tool(["gzip", "-c"], ["gzip", "-d", "-c"]),
    "bz2": Tool(["bzip2", "-c"], ["bzip2", "-d", "-c"]),
    "lzma": Tool(["xz", "--format=lzma", "-c"], ["xz", "--format=lzma", "-d", "-c"]),
    "xz": Tool(["xz", "-c"], ["xz", "-d", "-c"]),
}


def _encode(codec: Any, chunks: Sequence[bytes], level: int, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    writer = codec.open_writer(out, level, **kwargs)
    for chunk in chunks:
        assert writer.write(chunk) in (None, len(chunk))
    writer.close()
    assert not out.closed, "closing the writer closed the caller's file"
    return out.getvalue()


def _decode(
    codec: Any,
    data: bytes,
    sizes: Iterator[int] | None = None,
    source: Callable[[bytes], Any] = io.BytesIO,
    **kwargs: Any,
) -> bytes:
    src = source(data)
    reader = codec.open_reader(src, **kwargs)
    parts = []
    while True:
        size = next(sizes, 65536) if sizes is not None else 65536
        if size % 2:
            buf = bytearray(size)
            # As arraypickle reads: readinto where the reader has its own, else read.
            got = read_into(reader, readinto_of(reader), buf)
            part = bytes(buf[:got])
        else:
            part = reader.read(size)
        if not part:
            break
        parts.append(part)
    reader.close()
    assert not src.closed, "closing the reader closed the caller's file"
    return b"".join(parts)


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import io, resource, sys
    import numpy as np
    import arraypickle
    from arraypickle._streams import read_into, readinto_of

    name, level, size, nthreads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    codec = arraypickle.codecs().get(name)
    if codec is None or f"{type(codec).__module__}.{type(codec).__qualname__}" != sys.argv[5]:
        sys.exit(3)  # not installed: the test skips
    threads = {"threads": nthreads} if getattr(codec, "parallel", False) else {}
    src = np.empty(size // 8)
    src.fill(0.0)
    src[::65536] = np.arange(1, len(src[::65536]) + 1)
    dst = np.empty(size, np.uint8)
    dst.fill(7)

    def reset():
        # Linux: the kernel's high-water mark, reset (a child's ru_maxrss starts at
        # its parent's); elsewhere ru_maxrss.
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        return peak()

    def peak():
        try:
            with open("/proc/self/status") as f:
                return int(next(l for l in f if l.startswith("VmHWM")).split()[1]) * 1024
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    base = reset()
    out = io.BytesIO()
    writer = codec.open_writer(out, level, **threads)
    if hasattr(writer, "write_array"):
        writer.write_array(src.view(np.uint8), 8)
    else:
        writer.write(memoryview(src).cast("B"))
    writer.close()
    wrote = peak() - base
    blob = out.getvalue()
    del out
    base = reset()
    reader = codec.open_reader(io.BytesIO(blob), **threads)
    got = read_into(reader, readinto_of(reader), memoryview(dst))
    assert got == size, (got, size)
    assert reader.read(1) == b""
    reader.close()
    read = peak() - base
    assert np.array_equal(dst.view(np.float64), src)
    print(wrote, read, len(blob))
    """
)


class CodecConformance:
    """The tests every arraypickle codec must pass.

    Every codec's test suite runs it, the built-in ones included. To test yours, subclass
    :class:`CodecConformance` in a test module and name the codec; pytest collects the
    inherited ``test_*`` methods::

        # tests/test_mycodec_conformance.py
        from arraypickle.testing import CodecConformance, Tool

        class TestMyCodecConformance(CodecConformance):
            codec = "mycodec"  # an installed codec's name, or a codec object
            # The standard command-line tool, if the format has one (filters stdin to
            # stdout); its tests skip with a reason when the tool is not installed.
            tool = Tool(compress=["mytool", "-c"], decompress=["mytool", "-d", "-c"])

    Run it with ``python -m pytest``. The kit needs pytest and hypothesis (arraypickle's
    ``test`` extra). It checks, through the codec alone and through ``dump``/``load``:

    * container round trips over sizes from 0 bytes to 64 MiB (around the usual chunk
      boundaries, plus one 64 MiB array of cheap data), non-contiguous and Fortran
      arrays, many small writes, arbitrary write and read sizes (hypothesis);
    * every level 1..9, and the default level, and the codec's file extension;
    * truncated streams (cut at several points), garbage after the magic, a damaged byte
      and trailing garbage all raise :class:`arraypickle.CorruptFileError` (from a pipe,
      a cut after the container, in the stream's trailer, is found by the reader's
      ``finish_stream``: without one, such a cut may load the whole object, never anything
      else);
    * the writer leaves its file open, streams start with the magic, non-seekable files
      work both ways, reads of the source that return 1 to 7 bytes load, a file that
      fails mid-write fails the dump with its error, ``write_array`` (when the writer has
      it) round trips;
    * with the reader's ``finish_stream`` (these tests skip without one, saying what the
      codec lacks): a socket whose sender keeps it open loads without waiting for its end
      (objects sent one after the other's answer all load; sent at once, the second loads
      or raises :class:`arraypickle.CorruptFileError`, never wrong data), and objects
      dumped back to back into a seekable file load one by one;
    * ``threads`` (when the codec is ``parallel``): streams written with 1, 2 and 4
      threads, in one write or hundreds, over several chunks, read back the same with 1
      and 3 threads and with none, through the codec and through ``dump``/``load``;
      a reader's ``read_size`` (when it has one) is a positive int, and ``readinto``
      calls of that size come back full until the end;
    * readers are read as arraypickle reads them: with ``readinto`` where they have their
      own, else with ``read``;
    * bounded memory: writing and reading 64 MiB in single calls (with
      :attr:`CodecConformance.memory_threads` threads for a parallel codec) raises the
      peak RSS of a fresh process by at most :attr:`CodecConformance.memory_limit`
      (Linux: the kernel's high-water mark);
    * interop with :attr:`CodecConformance.tool`: the tool decompresses a dumped file into
      a container that loads and memory-maps, and a plain container compressed by the
      tool loads.

    A codec given as an object (rather than the name of an installed one) is registered
    for each test and forgotten after it; the memory test, which runs in a fresh process,
    then skips. The whole kit takes about ten seconds per codec on a 2-core machine.

    Attributes to set or override:

    ``codec``
        The name of an installed codec, or a codec object (registered for each test).
    ``tool``
        The standard command-line tool (:class:`Tool`), or None when the format has
        none (the interop tests then skip, saying so).
    ``levels``
        The levels to try (1..9).
    ``big_size``
        The size of the big array (64 MiB).
    ``memory_limit``
        How far writing or reading ``big_size`` bytes in one call may raise the peak
        RSS, in bytes (32 MiB: a whole copy of the data would exceed it).
    ``memory_level``
        The level of the memory test (1: the codec's own state grows with the level).
    ``memory_threads``
        The threads a parallel codec gets in the memory test (2: each thread may hold
        its own compressor state and a few chunks).
    """

    codec: Any = None
    tool: Tool | None = None
    levels: Sequence[int] = range(1, 10)
    big_size: int = 64 * MiB
    memory_limit: int = 32 * MiB
    memory_level: int = 1
    memory_threads: int = 2

    # -- fixtures -----------------------------------------------------------------

    @pytest.fixture
    def subject(self) -> Iterator[Any]:
        """The codec under test, installed in the registry for the test's duration."""
        if isinstance(self.codec, str):
            installed = arraypickle.codecs()
            if self.codec not in installed:
                known = _plugins.KNOWN_CODECS.get(self.codec)
                hint = f" (pip install {known.distribution})" if known else ""
                pytest.fail(f"codec {self.codec!r} is not installed{hint}")
            yield installed[self.codec]
            return
        if self.codec is None:
            pytest.fail(f"{type(self).__name__} must set `codec`")
        # Forced: the object under test, not an installed version of it.
        with registered(self.codec, lambda c: arraypickle.register_codec(c, force=True)):
            yield self.codec

    def _finishes(self, subject: Any) -> bool:
        """Whether the codec's reader has ``finish_stream`` (optional)."""
        reader = subject.open_reader(io.BytesIO(_encode(subject, [b"x"], 1)))
        try:
            return callable(getattr(reader, "finish_stream", None))
        finally:
            reader.close()

    def _needs_finish_stream(self, subject: Any, without: str) -> None:
        if not self._finishes(subject):
            pytest.skip(f"{subject.name}'s reader has no finish_stream: {without}")

    # -- the contract -------------------------------------------------------------

    def test_contract_members(self, subject: Any) -> None:
        assert isinstance(subject.name, str) and subject.name
        assert isinstance(subject.magic, bytes) and subject.magic
        assert isinstance(subject.extensions, tuple)
        assert all(e.startswith(".") for e in subject.extensions)
        assert arraypickle.codecs()[subject.name] is subject
        level = getattr(subject, "default_level", 3)
        assert isinstance(level, int) and 1 <= level <= 9, f"default_level {level!r}"

    def test_streams_start_with_magic(self, subject: Any) -> None:
        for chunks in ([], [b""], [b"x"], [bytes(100_000)]):
            data = _encode(subject, chunks, 1)
            assert data.startswith(subject.magic), f"{data[:16]!r} for {len(chunks)} writes"
            assert _decode(subject, data) == b"".join(chunks)

    def test_many_small_writes(self, subject: Any) -> None:
        rng = np.random.default_rng(1)
        blob = sample_bytes(400_000, seed=1).tobytes()
        cuts = np.sort(rng.integers(0, len(blob), 6000))
        chunks = [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)], strict=True)]
        data = _encode(subject, chunks, 1)
        reads = iter(rng.integers(1, 300, 100_000).tolist())
        assert _decode(subject, data, reads) == blob

    def test_any_write_and_read_sizes(self, subject: Any) -> None:
        @settings(max_examples=25, deadline=None, database=None)
        @given(
            chunks=st.lists(st.binary(max_size=3000), max_size=20),
            reads=st.lists(st.integers(1, 70_000), min_size=1, max_size=10),
        )
        def check(chunks: list[bytes], reads: list[int]) -> None:
            data = _encode(subject, chunks, 1)
            sizes = iter(reads * (1 + sum(map(len, chunks)) // min(reads)))
            assert _decode(subject, data, sizes) == b"".join(chunks)

        check()

    def test_write_array(self, subject: Any) -> None:
        out = io.BytesIO()
        writer = subject.open_writer(out, 1)
        if not hasattr(writer, "write_array"):
            writer.close()
            pytest.skip(f"{subject.name} is not array-aware (its writer has no write_array)")
        # As the core calls it: 1-D uint8 arrays holding whole elements.
        parts = [
            (np.frombuffer(b"header", np.uint8), None),
            (np.arange(100_000, dtype=np.float32).view(np.uint8), 4),
            (np.arange(3, dtype=np.complex128).view(np.uint8), 16),
            (np.zeros(0, np.uint8), None),
            (np.zeros(7, dtype="V300").view(np.uint8), 300),
            (np.zeros(0, np.uint8), 2),
            ((np.arange(2_000_000, dtype=np.int64) // 7).view(np.uint8), 8),
            (np.frombuffer(b"tail", np.uint8), 1),
        ]
        for data, itemsize in parts:
            if itemsize is None:
                writer.write(memoryview(data))
            else:
                writer.write_array(data, itemsize)
        writer.close()
        expected = b"".join(d.tobytes() for d, _ in parts)
        assert _decode(subject, out.getvalue()) == expected

    def test_threads(self, subject: Any) -> None:
        if not getattr(subject, "parallel", False):
            pytest.skip(f"{subject.name} does not declare the parallel capability")
        # Several chunks of every usual chunk size (1, 2, 4 MiB), written whole and
        # in small pieces, read back in odd sizes: the same bytes for any threads.
        blob = sample_bytes(9 * MiB + 12345).tobytes()
        rng = np.random.default_rng(5)
        cuts = np.sort(rng.integers(0, len(blob), 300))
        pieces = [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)], strict=True)]
        for threads in (1, 2, 4):
            for chunks in ([blob], pieces):
                data = _encode(subject, chunks, 1, threads=threads)
                for read_threads in (1, 3):
                    sizes = iter([1, 70_000, 3 * MiB + 1, 17] * 100)
                    got = _decode(subject, data, sizes, threads=read_threads)
                    assert got == blob, (threads, read_threads)
                assert _decode(subject, data) == blob

    def test_read_size(self, subject: Any) -> None:
        blob = sample_bytes(5 * MiB + 3).tobytes()
        threads = {"threads": 2} if getattr(subject, "parallel", False) else {}
        data = _encode(subject, [blob], 1, **threads)
        reader = subject.open_reader(io.BytesIO(data), **threads)
        size = getattr(reader, "read_size", None)
        if size is None:
            reader.close()
            pytest.skip(f"{subject.name}'s reader has no read_size")
        assert isinstance(size, int) and not isinstance(size, bool) and size >= 1, size
        # What arraypickle does with it: readinto calls of read_size bytes, filled whole.
        parts, buf = [], bytearray(size)
        while True:
            got = reader.readinto(buf)
            parts.append(bytes(buf[:got]))
            if got < size:
                break
        reader.close()
        assert b"".join(parts) == blob

    def test_threads_through_dump_and_load(self, subject: Any) -> None:
        if not getattr(subject, "parallel", False):
            pytest.skip(f"{subject.name} does not declare the parallel capability")
        obj = {
            "big": big_array(6 * MiB),
            "bytes": sample_bytes(3 * MiB + 1),
            "strided": np.arange(600_000, dtype=np.float64).reshape(1000, 600)[::3, ::2],
            "small": [np.arange(i, dtype=np.int32) for i in range(300)],
            "text": "arraypickle " * 10_000,
        }
        for threads in (1, 2, 4):
            blob = arraypickle.dumps(obj, compress=(subject.name, 1), threads=threads)
            for read_threads in (1, 2):
                assert_same(obj, arraypickle.loads(blob, threads=read_threads))

    # -- through dump and load ----------------------------------------------------

    @pytest.mark.parametrize("size", SIZES)
    def test_round_trip_size(self, subject: Any, size: int) -> None:
        arr = sample_bytes(size, seed=size)
        blob = arraypickle.dumps({"a": arr, "n": size}, compress=(subject.name, 1))
        assert blob.startswith(subject.magic)
        out = arraypickle.loads(blob)
        assert out["n"] == size
        assert_same(arr, out["a"])

    def test_big_array(self, subject: Any) -> None:
        arr = big_array(self.big_size)
        blob = arraypickle.dumps([arr], compress=(subject.name, 1))
        out = arraypickle.loads(blob)
        assert np.array_equal(out[0], arr)

    def test_noncontiguous_and_fortran(self, subject: Any) -> None:
        base = np.zeros((600, 500))
        base.flat[::7] = np.random.default_rng(4).normal(size=base[:, :].size // 7 + 1)
        obj = {
            "view": base[::2, 1::3],
            "fortran": np.asfortranarray(base[:300, :200]),
            "transposed": base.T,
            "reversed": base[::-1, ::-7],
        }
        out = arraypickle.loads(arraypickle.dumps(obj, compress=(subject.name, 1)))
        assert_same(obj, out)
        assert out["fortran"].flags.f_contiguous
        assert out["transposed"].flags.f_contiguous

    def test_many_small_arrays(self, subject: Any) -> None:
        rng = np.random.default_rng(2)
        dtypes = ["u1", "<i2", ">i4", "f4", "f8", "c16", "?", "M8[s]", "U3", "S5"]
        obj = [
            rng.integers(0, 100, int(rng.integers(0, 40))).astype(dtypes[i % 10])
            for i in range(2000)
        ]
        assert_same(obj, arraypickle.loads(arraypickle.dumps(obj, compress=(subject.name, 1))))

    def test_levels(self, subject: Any) -> None:
        obj = sample_object()
        for level in self.levels:
            blob = arraypickle.dumps(obj, compress=(subject.name, level))
            assert blob.startswith(subject.magic), f"level {level}"
            assert_same(obj, arraypickle.loads(blob))
        assert not arraypickle.dumps(obj, compress=(subject.name, 0)).startswith(subject.magic)

    def test_default_level_and_extension(self, subject: Any, tmp_path: Any) -> None:
        obj = sample_object()
        blob = arraypickle.dumps(obj, compress=subject.name)
        assert blob.startswith(subject.magic)
        assert_same(obj, arraypickle.loads(blob))
        for ext in subject.extensions:
            path = tmp_path / f"obj.pkl{ext}"
            arraypickle.dump(obj, path)
            assert path.read_bytes().startswith(subject.magic), ext
            assert_same(obj, arraypickle.load(path))

    def test_failing_file(self, subject: Any) -> None:
        obj = sample_object()
        full = len(arraypickle.dumps(obj, compress=(subject.name, 1)))
        for budget in (0, 10, full // 2, full - 1):
            with pytest.raises(OSError, match="no space left"):
                arraypickle.dump(obj, _Failing(budget), compress=(subject.name, 1))

    def test_unseekable_files(self, subject: Any) -> None:
        obj = sample_object()
        out = Unseekable()
        arraypickle.dump(obj, out, compress=(subject.name, 1))
        assert_same(obj, arraypickle.load(Unseekable(out.getvalue())))

    def test_short_reads_of_the_source(self, subject: Any) -> None:
        # Readers must take only b"" for the end of their input: reads may be short.
        obj = sample_object()
        blob = arraypickle.dumps(obj, compress=(subject.name, 1))
        assert_same(obj, arraypickle.load(Trickle(blob)))
        if getattr(subject, "parallel", False):
            assert_same(obj, arraypickle.load(Trickle(blob, most=5), threads=2))

    def test_reader_takes_its_magic_a_byte_at_a_time(self, subject: Any) -> None:
        # open_reader's file may hand out one byte per read from the first one on.
        data = sample_bytes(50_000).tobytes()
        stream = _encode(subject, [data], 1)
        assert _decode(subject, stream, source=lambda b: Trickle(b, most=1)) == data

    def test_socket_kept_open_by_the_sender(self, subject: Any) -> None:
        # The load returns once the object has arrived, without waiting for the end
        # of the input; and it reads its codec stream to the end (the trailer), so
        # the next object sent after the answer loads too.
        self._needs_finish_stream(subject, "a load from a socket may wait for more input")
        objs = [sample_object(1), {"small": np.arange(10)}, sample_object(2)]
        blobs = [arraypickle.dumps(o, compress=(subject.name, 1)) for o in objs]
        runs = [{}, {"threads": 2}] if getattr(subject, "parallel", False) else [{}]
        for kwargs in runs:
            for obj, got in zip(objs, load_from_kept_open_socket(blobs, **kwargs), strict=True):
                if isinstance(got, BaseException):
                    raise got
                assert_same(obj, got)

    def test_back_to_back_on_a_socket(self, subject: Any) -> None:
        # Sent at once, the second object either loads or fails clearly; never wrong.
        self._needs_finish_stream(subject, "a load from a socket may wait for more input")
        objs = [sample_object(1), sample_object(2)]
        blobs = [arraypickle.dumps(o, compress=(subject.name, 1)) for o in objs]
        first, second = load_from_kept_open_socket(blobs, answer=False)
        if isinstance(first, BaseException):
            raise first
        assert_same(objs[0], first)
        if isinstance(second, BaseException):
            assert isinstance(second, CorruptFileError), repr(second)
        else:
            assert_same(objs[1], second)

    def test_back_to_back_in_a_seekable_file(self, subject: Any, tmp_path: Any) -> None:
        # A load from a file object that can seek leaves it right after the codec
        # stream holding the object, as an uncompressed load leaves it after its END
        # record: objects dumped one after another into one file load one by one,
        # whatever follows (a reader must not take the next object's bytes for more of
        # its own stream: a plain pickle's first byte, 0x80, looks like a skippable
        # snappy chunk). The 4 MiB array sets decoders running ahead on a helper
        # thread, where they do.
        self._needs_finish_stream(subject, "nothing can follow its stream in a file object")
        name = subject.name
        other = "gzip" if name != "gzip" else "zlib"
        parts = [
            (sample_object(1), (name, 1)),
            (0, "pickle"),
            ({"big": sample_bytes(4 * MiB, 2)}, (name, 1)),
            ({"other": np.arange(1000)}, other),
            ("uncompressed", 0),
            ({"small": np.arange(10)}, (name, 1)),
        ]
        path = tmp_path / "several.pkl"
        ends = []
        with open(path, "wb") as f:
            for obj, compress in parts:
                if compress == "pickle":
                    pickle.dump(obj, f, protocol=2)
                else:
                    arraypickle.dump(obj, f, compress=compress)
                ends.append(f.tell())
        runs = [{}, {"threads": 2}] if getattr(subject, "parallel", False) else [{}]
        for kwargs in runs:
            for source in (open(path, "rb"), io.BytesIO(path.read_bytes())):  # noqa: SIM115
                with source:
                    for (obj, _), end in zip(parts, ends, strict=True):
                        assert_same(obj, arraypickle.load(source, **kwargs))
                        assert source.tell() == end
                    with pytest.raises(EOFError):
                        arraypickle.load(source, **kwargs)

    # -- damaged input ------------------------------------------------------------

    def _dumped(self, subject: Any) -> bytes:
        return arraypickle.dumps(sample_object(), compress=(subject.name, 1))

    def test_truncated(self, subject: Any, tmp_path: Any) -> None:
        blob = self._dumped(subject)
        n = len(blob)
        magic = len(subject.magic)
        cuts = sorted({magic, magic + 1, magic + 9, n // 4, n // 2, 3 * n // 4, n - 9, n - 1})
        # From a pipe, the end of the stream after the container (its trailer) is read
        # only by finish_stream: without it, a cut there may load the (whole, checked)
        # object, but never anything else.
        finishes = self._finishes(subject)
        for cut in cuts:
            with pytest.raises(CorruptFileError):
                arraypickle.loads(blob[:cut])
            try:
                got = arraypickle.load(Unseekable(blob[:cut]))
            except CorruptFileError:
                continue
            assert not finishes, f"a stream cut at {cut} of {n} bytes loaded from a pipe"
            assert_same(sample_object(), got)
        path = tmp_path / "cut.pkl"
        path.write_bytes(blob[: n // 2])
        with pytest.raises(CorruptFileError, match=r"cut\.pkl"):
            arraypickle.load(path)

    def test_garbage_after_magic(self, subject: Any) -> None:
        rng = np.random.default_rng(3)
        tails = [rng.bytes(n) for n in (1, 3, 8, 64, 1000, 70_000)]
        tails += [bytes(100), b"\xff" * 100, bytes(range(256)) * 4]
        for tail in tails:
            with pytest.raises(CorruptFileError):
                arraypickle.loads(subject.magic + tail)

    def test_damaged_byte(self, subject: Any) -> None:
        blob = bytearray(self._dumped(subject))
        for where in (len(blob) // 3, len(blob) // 2):
            damaged = bytearray(blob)
            damaged[where] ^= 0x55
            with pytest.raises(CorruptFileError):
                arraypickle.loads(bytes(damaged))

    def test_trailing_garbage(self, subject: Any) -> None:
        blob = self._dumped(subject)
        with pytest.raises(CorruptFileError):
            arraypickle.loads(blob + b"garbage!")

    # -- memory -------------------------------------------------------------------

    def test_bounded_memory(self, subject: Any) -> None:
        script = [sys.executable, "-c", _MEMORY_SCRIPT, subject.name]
        args = [str(self.memory_level), str(self.big_size), str(self.memory_threads)]
        args.append(f"{type(subject).__module__}.{type(subject).__qualname__}")
        done = subprocess.run(script + args, capture_output=True, text=True, env=_child_env())
        if done.returncode == 3:
            pytest.skip(
                f"the memory test runs in a fresh process, where no codec of the class of "
                f"{subject.name!r} is installed under that name"
            )
        assert done.returncode == 0, done.stderr
        wrote, read, _ = map(int, done.stdout.split())
        limit = self.memory_limit
        assert wrote <= limit, f"writing {self.big_size} bytes raised the peak RSS by {wrote}"
        assert read <= limit, f"reading {self.big_size} bytes raised the peak RSS by {read}"

    # -- the standard tool --------------------------------------------------------

    def _tool(self) -> Tool:
        if self.tool is None:
            pytest.skip("the format has no standard command-line tool")
        missing = self.tool.missing()
        if missing:
            pytest.skip(f"the standard tool is not available: {missing}")
        return self.tool

    def test_tool_decompresses_dump(self, subject: Any, tmp_path: Any) -> None:
        tool = self._tool()
        obj = sample_object()
        packed, plain = os.fspath(tmp_path / "obj.packed"), os.fspath(tmp_path / "obj.pkl")
        arraypickle.dump(obj, packed, compress=subject.name)
        tool.run("decompress", packed, plain)
        assert_same(obj, arraypickle.load(plain))
        mapped = arraypickle.load(plain, mmap_mode="r")
        assert isinstance(mapped["floats"], np.memmap)
        assert_same(obj, mapped)

    def test_tool_compressed_file_loads(self, subject: Any, tmp_path: Any) -> None:
        tool = self._tool()
        obj = sample_object()
        plain, packed = os.fspath(tmp_path / "obj.pkl"), os.fspath(tmp_path / "obj.packed")
        arraypickle.dump(obj, plain)
        tool.run("compress", plain, packed)
        with open(packed, "rb") as f:
            assert f.read(len(subject.magic)) == subject.magic
        assert_same(obj, arraypickle.load(packed))


def _child_env() -> dict[str, str]:
    """The environment for a child interpreter: this one's, with this process's path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env
