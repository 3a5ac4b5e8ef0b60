"""Parallel compression and decompression: the ``threads`` argument, the shared machinery
(:mod:`arraypickle._parallel`), chunk boundaries, determinism across thread counts,
the standard tools on parallel output, failures mid-stream and forked children."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraypickle
from arraypickle import CorruptFileError, _parallel
from arraypickle._cores import cgroup_cpu_limit
from arraypickle._parallel import ChunkedWriter, Frame, FramedReader, Pipeline, ReadAhead
from arraypickle._stdcodecs import _stream
from arraypickle._stdcodecs._deflate import adler32_combine, crc32_combine
from arraypickle.testing import Unseekable, assert_same, big_array, sample_bytes
from arraypickle.testing._files import _Failing  # a full disk, as the codec kit has it

MiB = 1 << 20

# Every codec that declares the parallel capability, with the command that decompresses
# its streams from stdin (None: the format has no standard tool).
PARALLEL_TOOLS = {
    "zlib": ["zlib-flate", "-uncompress"],
    "gzip": ["gzip", "-d", "-c"],
    "bz2": ["bzip2", "-d", "-c"],
    "xz": ["xz", "-d", "-c"],
    "lz4": ["lz4", "-d", "-c"],
    "zstd": ["zstd", "-d", "-c", "-q"],
    "blosc": None,
}


def parallel_codecs() -> list[Any]:
    """The parallel codecs, each a param that skips when its plugin is missing."""
    installed = arraypickle.codecs()
    out = []
    for name in PARALLEL_TOOLS:
        marks = [] if name in installed else [pytest.mark.skip(f"{name} is not installed")]
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def codec(name: str) -> Any:
    return arraypickle.codecs()[name]


def our_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("arraypickle")]


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    before = set(our_threads())
    yield
    assert set(our_threads()) <= before, f"threads left running: {our_threads()}"


def encode(name: str, parts: list[Any], threads: int, level: int = 1) -> bytes:
    out = io.BytesIO()
    writer = codec(name).open_writer(out, level, threads=threads)
    for part in parts:
        writer.write(part)
    writer.close()
    return out.getvalue()


def decode(name: str, data: bytes, threads: int, piece: int = 3 * MiB + 5) -> bytes:
    reader = codec(name).open_reader(io.BytesIO(data), threads=threads)
    buf, parts = bytearray(piece), []
    while n := reader.readinto(buf):
        parts.append(bytes(buf[:n]))
    reader.close()
    return b"".join(parts)


def chunk_size(name: str) -> int:
    writer = codec(name).open_writer(io.BytesIO(), 1, threads=1)
    size = getattr(writer, "chunk_size", 1 << 20)
    writer.close()
    return size


# -- the threads argument ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_threads_must_be_none_or_a_positive_int(bad):
    with pytest.raises(ValueError, match="threads"):
        arraypickle.dumps([1], compress=3, threads=bad)
    with pytest.raises(ValueError, match="threads"):
        arraypickle.dump([1], io.BytesIO(), threads=bad)
    with pytest.raises(ValueError, match="threads"):
        arraypickle.loads(arraypickle.dumps([1]), threads=bad)


def test_default_is_every_usable_core(monkeypatch):
    monkeypatch.delenv("ARRAYPICKLE_MAX_THREADS", raising=False)
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    quota = cgroup_cpu_limit()
    expected = expected or os.cpu_count()
    assert _parallel.resolve_threads(None) == (min(expected, quota) if quota else expected)


def test_threads_reach_parallel_codecs_only(fresh_registry):
    seen: dict[str, Any] = {}
    zlib_codec = codec("zlib")

    class Recording(arraypickle.Codec):
        name, magic, extensions, parallel = "rec", b"REC!", (".rec",), True

        def open_writer(self, fileobj, level, threads=None):
            seen["write"] = threads
            fileobj.write(self.magic)
            return zlib_codec.open_writer(fileobj, level, threads=threads)

        def open_reader(self, fileobj, threads=None):
            seen["read"] = threads
            assert fileobj.read(4) == self.magic
            return zlib_codec.open_reader(fileobj, threads=threads)

    class Plain:  # the five members only: it must never be given threads
        name, magic, extensions = "plain", b"PLN!", (".pln",)

        def open_writer(self, fileobj, level):
            fileobj.write(self.magic)
            return zlib_codec.open_writer(fileobj, level)

        def open_reader(self, fileobj):
            assert fileobj.read(4) == self.magic
            return zlib_codec.open_reader(fileobj)

    arraypickle.register_codec(Recording())
    arraypickle.register_codec(Plain())
    blob = arraypickle.dumps([1, 2], compress="rec", threads=3)
    assert arraypickle.loads(blob, threads=2) == [1, 2]
    assert seen == {"write": 3, "read": 2}
    blob = arraypickle.dumps([3], compress="plain", threads=3)
    assert arraypickle.loads(blob, threads=3) == [3]
    arraypickle.dumps([1], compress="rec")
    assert seen["write"] == _parallel.usable_cores()


@pytest.mark.parametrize("verify", [True, False])
def test_buffer_payloads_are_read_at_the_codecs_read_size(fresh_registry, verify):
    """A reader's read_size sets the reads of large payloads, verified or not (the hash
    takes each read in slices), so frames are decoded whole, in parallel, in place."""
    zlib_codec = codec("zlib")
    sizes: list[int] = []

    class Sized(io.RawIOBase):
        read_size = 6 << 20

        def __init__(self, inner):
            self._inner = inner

        def readable(self):
            return True

        def readinto(self, view):
            sizes.append(len(view))
            return self._inner.readinto(view)

    class Big(arraypickle.Codec):
        name, magic, extensions = "big", b"BIG!", (".big",)

        def open_writer(self, fileobj, level):
            fileobj.write(self.magic)
            return zlib_codec.open_writer(fileobj, level, threads=1)

        def open_reader(self, fileobj):
            assert fileobj.read(4) == self.magic
            return Sized(zlib_codec.open_reader(fileobj, threads=1))

    arraypickle.register_codec(Big())
    value = np.arange(3 << 20, dtype=np.float64)  # 24 MiB
    blob = arraypickle.dumps(value, compress="big")
    assert np.array_equal(arraypickle.loads(blob, verify=verify), value)
    assert max(sizes) == 6 << 20
    assert sizes.count(6 << 20) >= 3


class _Counting(ChunkedWriter):
    chunk_size = 64 << 10

    def __init__(self, fileobj, threads):
        super().__init__(fileobj, threads)
        self.jobs = 0
        self.finished = False

    def job(self, chunk, itemsize, last):
        self.jobs += 1
        data = bytes(chunk)
        return lambda: zlib.compress(data, 1)

    def finish(self):
        self.finished = True


def test_a_failed_dump_drops_the_queued_chunks_and_writes_no_trailer(fresh_registry):
    """Ctrl-C or an unpicklable object mid-dump: the parallel writer is aborted, not
    finished, so the caller gets the error without waiting for more compression."""
    writers: list[_Counting] = []

    class Counting(arraypickle.Codec):
        name, magic, extensions, parallel = "count", b"CNT!", (".cnt",), True

        def open_writer(self, fileobj, level, threads=None):
            writers.append(_Counting(fileobj, threads))
            return writers[-1]

        def open_reader(self, fileobj, threads=None):
            raise AssertionError("not read")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    arraypickle.register_codec(Counting())
    with pytest.raises(RuntimeError, match="cannot pickle"):
        arraypickle.dumps([np.zeros(1 << 20), Unpicklable()], compress="count", threads=2)
    (writer,) = writers
    assert writer.closed and not writer.finished
    assert writer.jobs < (8 << 20) // writer.chunk_size + 2  # no final chunk was made
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")


# -- check values -----------------------------------------------------------------------


@settings(max_examples=60, deadline=None, database=None)
@given(st.binary(max_size=3000), st.binary(max_size=3000), st.integers(0, 1 << 40))
def test_check_values_combine(a, b, zeros):
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)
    # A long run of zeros: the combination must not depend on reading the data.
    z = zlib.crc32(bytes(zeros % 5000))
    assert crc32_combine(zlib.crc32(a), z, zeros % 5000) == zlib.crc32(a + bytes(zeros % 5000))


# -- the pipeline -----------------------------------------------------------------------


def test_pipeline_keeps_order_and_bounds_what_is_in_flight():
    out: list[int] = []
    pipe = Pipeline(3, out.append, depth=4)
    rng = np.random.default_rng(0)
    for i in range(60):
        n = int(rng.integers(1, 20_000))
        pipe.submit(lambda i=i, n=n: (sum(range(n)), i)[1])
        assert pipe.pending <= 4
    pipe.close()
    assert out == list(range(60))


def test_pipeline_with_one_thread_starts_none():
    before = threading.active_count()
    out: list[int] = []
    pipe = Pipeline(1, out.append)
    for i in range(5):
        pipe.submit(lambda i=i: threading.active_count() - before + i)
    pipe.close()
    assert out == [0, 1, 2, 3, 4]


def test_small_streams_start_no_thread(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a thread pool was started")

    monkeypatch.setattr(_parallel, "ThreadPoolExecutor", refuse)
    monkeypatch.setattr(_parallel.threading, "Thread", refuse)
    obj = {"a": np.arange(50_000), "b": list(range(10_000))}  # under one chunk
    for name in ("zlib", "gzip", "bz2", "xz", "lz4", "zstd", "blosc"):
        if name in arraypickle.codecs():
            blob = arraypickle.dumps(obj, compress=name, threads=4)
            assert_same(obj, arraypickle.loads(blob, threads=4))


def test_pipeline_raises_the_jobs_exception_and_stops():
    started = threading.Event()
    release = threading.Event()

    def job(i: int) -> int:
        if i == 3:
            raise KeyError("job 3 failed")
        if i > 3:
            started.set()
            release.wait(5)
        return i

    out: list[int] = []
    pipe = Pipeline(2, out.append, depth=6)
    with pytest.raises(KeyError, match="job 3"):
        for i in range(8):
            pipe.submit(job, i)
        pipe.drain()
    release.set()
    pipe.abort()
    assert out == [0, 1, 2]


# -- chunk boundaries, determinism ------------------------------------------------------


@pytest.mark.parametrize("name", parallel_codecs())
def test_chunk_boundaries_and_thread_counts(name):
    size = chunk_size(name)
    rng = np.random.default_rng(7)
    for n in (0, 1, size - 1, size, size + 1, 3 * size + 7):
        blob = sample_bytes(n, seed=n).tobytes()
        cuts = np.sort(rng.integers(0, n + 1, 40))
        pieces = [blob[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
        streams = {encode(name, [blob], t) for t in (1, 2, 3, 4)}
        streams |= {encode(name, pieces, t) for t in (1, 4)}
        assert len(streams) == 1, f"{n} bytes: the stream depends on threads or write sizes"
        (data,) = streams
        for t in (1, 3):
            assert decode(name, data, t) == blob, (n, t)


@pytest.mark.parametrize("name", parallel_codecs())
def test_dump_around_chunk_sizes(name):
    size = chunk_size(name)
    for n in (size - 1, size, size + 1):
        obj = {"a": sample_bytes(n, seed=n), "b": np.zeros(0), "tail": list(range(50))}
        blobs = {arraypickle.dumps(obj, compress=(name, 1), threads=t) for t in (1, 2, 3, 4)}
        assert len(blobs) == 1
        (blob,) = blobs
        for t in (1, 2, 4):
            assert_same(obj, arraypickle.loads(blob, threads=t))


def test_parallel_deflate_stays_within_2_percent_of_one_stream():
    rng = np.random.default_rng(3)
    images = (np.repeat(rng.integers(0, 256, (400, 40, 47)), 2, axis=1) / 255).astype(np.float32)
    plain = arraypickle.dumps(images)
    ours = arraypickle.dumps(images, compress=3, threads=2)
    single = zlib.compress(plain, 3)
    assert len(plain) > 4 * MiB
    assert len(ours) <= 1.02 * len(single), (len(ours), len(single))
    assert zlib.decompress(ours) == plain


def test_write_returns_once_the_callers_memory_is_consumed():
    # Over the copy limit, chunks are compressed in place: write must wait for them.
    data = bytearray(sample_bytes(20 * MiB).tobytes())
    expected = bytes(data)
    out = io.BytesIO()
    writer = codec("zlib").open_writer(out, 1, threads=4)
    writer.write(data)
    data[:] = bytes(len(data))  # the core reuses its scratch buffers like this
    writer.write(data[:100])
    writer.close()
    assert zlib.decompress(out.getvalue()) == expected + bytes(100)


# -- the standard tools -----------------------------------------------------------------


def tool_object() -> dict[str, Any]:
    return {
        "big": big_array(10 * MiB),
        "bytes": sample_bytes(5 * MiB + 3),
        "strided": np.arange(400_000.0).reshape(800, 500)[::2, ::3],
        "small": [np.full(i, i, np.int16) for i in range(200)],
    }


@pytest.mark.parametrize("name", parallel_codecs())
def test_standard_tool_decompresses_parallel_output(name, tmp_path):
    command = PARALLEL_TOOLS[name]
    if command is None:
        pytest.skip(f"{name} has no standard command-line tool")
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    obj = tool_object()
    packed, plain = tmp_path / "obj.packed", tmp_path / "obj.pkl"
    arraypickle.dump(obj, packed, compress=(name, 1), threads=3)
    with open(packed, "rb") as fin, open(plain, "wb") as fout:
        done = subprocess.run(command, stdin=fin, stdout=fout, stderr=subprocess.PIPE)
    assert done.returncode == 0, done.stderr
    assert plain.read_bytes() == arraypickle.dumps(obj)
    mapped = arraypickle.load(plain, mmap_mode="r")
    assert isinstance(mapped["big"], np.memmap)
    assert_same(obj, mapped)
    assert_same(obj, arraypickle.load(packed, threads=2))


# -- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", parallel_codecs())
def test_a_write_failing_midway_fails_the_dump_and_stops_the_threads(name):
    obj = tool_object()
    full = len(arraypickle.dumps(obj, compress=(name, 1), threads=1))
    for budget in (0, 100, full // 3, full - 1):
        with pytest.raises(OSError, match="no space left"):
            arraypickle.dump(obj, _Failing(budget), compress=(name, 1), threads=3)
        assert not our_threads()


def test_a_failed_dump_leaves_the_existing_file_alone(tmp_path):
    path = tmp_path / "kept.pkl.gz"
    arraypickle.dump({"old": 1}, path)
    bad = {"big": big_array(8 * MiB), "lock": threading.Lock()}  # the lock cannot pickle
    with pytest.raises(TypeError):
        arraypickle.dump(bad, path, threads=4)
    assert arraypickle.load(path) == {"old": 1}


class Exploding(ChunkedWriter):
    """Compresses nothing; the job of chunk ``fail_at`` raises."""

    chunk_size = 64 << 10

    def __init__(self, fileobj: Any, threads: int, fail_at: int) -> None:
        super().__init__(fileobj, threads)
        self._index = 0
        self._fail_at = fail_at

    def job(self, chunk, itemsize, last):
        index = self._index
        self._index += 1

        def run() -> bytes:
            if index == self._fail_at:
                raise ZeroDivisionError(f"chunk {index}")
            return bytes(chunk)

        return run


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("fail_at", [0, 5, 40])
def test_a_failing_job_surfaces_and_the_writer_is_done(threads, fail_at):
    out = io.BytesIO()
    writer = Exploding(out, threads, fail_at)
    data = sample_bytes(3 * MiB).tobytes()
    with pytest.raises(ZeroDivisionError, match=f"chunk {fail_at}"):
        writer.write(data[:10])
        writer.write(data)
        writer.write(memoryview(data)[: 9 * MiB // 10])
        writer.close()
    with pytest.raises(ValueError):
        writer.write(b"more")
    writer.close()
    # Exactly the chunks before the failing one went out, in order.
    stream = data[:10] + data + data[: 9 * MiB // 10]
    assert out.getvalue() == stream[: fail_at * Exploding.chunk_size]


@pytest.mark.parametrize("name", ["lz4", "zstd", "blosc"])
def test_a_damaged_frame_among_many_is_corrupt(name):
    if name not in arraypickle.codecs():
        pytest.skip(f"{name} is not installed")
    blob = bytearray(arraypickle.dumps(tool_object(), compress=(name, 1), threads=2))
    blob[len(blob) * 2 // 3] ^= 0x5A
    with pytest.raises(CorruptFileError):
        arraypickle.loads(bytes(blob), threads=3)


@pytest.mark.parametrize("name", ["zlib", "gzip", "bz2", "xz"])
def test_read_ahead_stops_on_damage_truncation_and_early_close(name):
    blob = arraypickle.dumps(tool_object(), compress=(name, 1), threads=2)
    with pytest.raises(CorruptFileError):
        arraypickle.loads(blob[: len(blob) // 2], threads=2)
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 0x5A
    with pytest.raises(CorruptFileError):
        arraypickle.loads(bytes(damaged), threads=2)
    reader = codec(name).open_reader(Unseekable(blob), threads=2)
    assert len(reader.read(3 * MiB)) == 3 * MiB  # past the point the helper starts
    reader.close()


def test_read_ahead_hands_over_input_from_the_callers_thread():
    data = sample_bytes(6 * MiB).tobytes()
    src = io.BytesIO(zlib.compress(data, 1))
    callers = set()
    real_read = src.read

    def read(n=-1):
        callers.add(threading.current_thread().name)
        return real_read(n)

    src.read = read  # type: ignore[method-assign]
    reader = _stream.DecompressReader(
        src, lambda: _stream.Inflater(zlib.MAX_WBITS), codec="zlib", multistream=False, threads=2
    )
    assert reader.read(len(data) + 1) == data
    reader.close()
    assert callers == {threading.current_thread().name}


def _readahead_threads() -> int:
    return sum(t.name == "arraypickle-readahead" for t in threading.enumerate())


def test_read_ahead_starts_at_the_first_big_read_only():
    # Small reads are the unpickler's: a helper would only contend for the GIL with it.
    data = sample_bytes(8 * MiB).tobytes()
    before = _readahead_threads()
    reader = codec("zlib").open_reader(io.BytesIO(zlib.compress(data, 1)), threads=2)
    small = [reader.read(64 << 10) for _ in range(48)]  # 3 MiB in unpickler-sized reads
    assert _readahead_threads() == before
    big = bytearray(_stream.AHEAD_READ)
    assert reader.readinto(big) == len(big)
    assert _readahead_threads() == before + 1
    rest = reader.read(len(data))
    reader.close()
    assert b"".join([*small, bytes(big), rest]) == data
    one_thread = codec("zlib").open_reader(io.BytesIO(zlib.compress(data, 1)), threads=1)
    assert one_thread.read(len(data)) == data
    small_load = codec("zlib").open_reader(io.BytesIO(zlib.compress(data[:MiB], 1)), threads=2)
    assert small_load.read(MiB) == data[:MiB]  # one big read, but under AHEAD_AFTER
    assert _readahead_threads() == before


def test_read_ahead_exceptions_reach_the_reader():
    def produce(feed):
        yield b"one"
        raise RuntimeError("decoder failed")

    ahead = ReadAhead(io.BytesIO(b"x" * 10), produce)
    assert bytes(ahead.next()) == b"one"
    with pytest.raises(RuntimeError, match="decoder failed"):
        ahead.next()
    ahead.close()


class Counting(FramedReader):
    """Frames are 4-byte big-endian lengths followed by that many bytes, decoded by copy."""

    codec_name = "counting"
    frame_size = 1000

    def next_frame(self):
        if self.at_end():
            return None
        n = int.from_bytes(self.take(4, "a length"), "big")
        return Frame(n, self.take(n, "a frame"))

    def decode_into(self, frame, out):
        if frame.payload.startswith(b"!"):
            raise self.corrupt("has a bad frame")
        out[:] = frame.payload


def test_framed_reader_in_place_straddling_and_errors():
    rng = np.random.default_rng(1)
    frames = [rng.bytes(int(rng.integers(0, 3000))) for _ in range(200)]
    stream = b"".join(len(f).to_bytes(4, "big") + f for f in frames)
    for threads in (1, 2, 4):
        reader = Counting(io.BytesIO(stream), threads)
        assert reader.read_size == 1000 * 4 * threads
        parts = [reader.read(7)]
        buf = bytearray(5000)
        while n := reader.readinto(buf):
            parts.append(bytes(buf[:n]))
        assert b"".join(parts) == b"".join(frames)
        reader.close()
    bad = stream + (3).to_bytes(4, "big") + b"!!!"
    with pytest.raises(CorruptFileError, match="bad frame"):
        Counting(io.BytesIO(bad), 3).read(len(stream) + 3)
    with pytest.raises(CorruptFileError, match="truncated"):
        Counting(io.BytesIO(stream[:-1]), 2).read(len(stream))


class Where(Counting):
    """Records the thread each frame is decoded on."""

    def __init__(self, *args):
        super().__init__(*args)
        self.where = []

    def decode_into(self, frame, out):
        self.where.append(threading.current_thread() is threading.main_thread())
        super().decode_into(frame, out)


def test_framed_reader_decodes_a_lone_frame_in_the_calling_thread():
    # A read that one frame completes would only wait for a worker: small reads (the
    # unpickler's) decode in place; reads of several frames use the workers.
    frames = [bytes([65 + i % 26]) * 1000 for i in range(40)]
    stream = b"".join(len(f).to_bytes(4, "big") + f for f in frames)
    reader = Where(io.BytesIO(stream), 2)
    assert reader.read(10) == frames[0][:10]
    for i in range(1, 20):  # each frame straddles its read, or ends it
        assert reader.read(1000) == frames[i - 1][10:] + frames[i][:10]
    assert all(reader.where)
    del reader.where[:]
    assert reader.read(21 * 1000 - 10) == b"".join(frames[19:])[10:]
    assert not all(reader.where)  # workers took some of the 21 frames
    reader.close()
    aligned = Where(io.BytesIO(stream), 2)
    for i in range(10):  # each read is exactly one frame
        assert aligned.read(1000) == frames[i]
    assert aligned.where == [True] * 10
    aligned.close()


# -- fork -------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_dump_in_a_forked_child_after_the_parent_used_the_pool():
    # In a fresh interpreter, so that pytest's own process is never forked.
    script = f"""
import os, sys, numpy as np, arraypickle
from arraypickle.testing import assert_same
sys.path[:0] = {sys.path!r}
obj = {{"a": np.arange(3_000_000.0), "b": list(range(1000))}}
arraypickle.loads(arraypickle.dumps(obj, compress=3, threads=2), threads=2)  # parent uses it
pid = os.fork()
if pid == 0:
    code = 1
    try:
        blob = arraypickle.dumps(obj, compress=("zlib", 1), threads=2)
        assert_same(obj, arraypickle.loads(blob, threads=2))
        code = 0
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_read_ahead_opened_before_fork_refuses_to_run_in_the_child():
    # In a fresh interpreter, so that pytest's own process is never forked.
    script = f"""
import io, os, sys, zlib
sys.path[:0] = {sys.path!r}
from arraypickle._parallel import ReadAhead

def produce(feed):
    d = zlib.decompressobj()
    while data := feed.read(1 << 16):
        yield d.decompress(data)

ahead = ReadAhead(io.BytesIO(zlib.compress(bytes(1 << 22))), produce)
pid = os.fork()
if pid == 0:
    try:
        ahead.next()
        code = 1
    except RuntimeError as exc:
        code = 0 if "os.fork()" in str(exc) else 2
    os._exit(code)
_, status = os.waitpid(pid, 0)
assert ahead.next()
ahead.close()
sys.exit(os.waitstatus_to_exitcode(status))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr


# -- FramedReader.take: a length read from the stream claims memory as input arrives ----


class _ReadOnly:
    """A file object with read() alone (no readinto)."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)


@pytest.mark.parametrize("wrap", [io.BytesIO, _ReadOnly])
@pytest.mark.parametrize("extra", [0, 1 << 20, 40 << 20])  # below, and past, the trust
def test_take_returns_payloads_larger_than_it_trusts(wrap, extra):
    n = _parallel._TAKE_TRUST + extra
    data = np.random.default_rng(0).bytes(n + 5)
    reader = FramedReader(wrap(data))
    assert bytes(reader.take(3, "a header")) == data[:3]
    got = reader.take(n, "a frame")
    assert len(got) == n and bytes(got) == data[3 : n + 3]
    assert bytes(reader.take(2, "the rest")) == data[n + 3 :]


@pytest.mark.parametrize("wrap", [io.BytesIO, _ReadOnly])
def test_take_of_a_damaged_length_claims_no_more_than_the_input(wrap):
    # 4 GiB asked for, 70 KB there: a truncation, found without zeroing the 4 GiB
    reader = FramedReader(wrap(bytes(70_000)))
    with pytest.raises(CorruptFileError, match="truncated"):
        reader.take((4 << 30) - 1, "a frame")
    script = (
        "import io, resource, arraypickle._parallel as p\n"
        "r = p.FramedReader(io.BytesIO(bytes(70_000)))\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try: r.take((4 << 30) - 1, 'a frame')\n"
        "except Exception: pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    grew_kib = int(subprocess.run([sys.executable, "-c", script], capture_output=True,
                                  text=True, check=True).stdout)  # fmt: skip
    assert grew_kib < 2 * (_parallel._TAKE_TRUST >> 10)
