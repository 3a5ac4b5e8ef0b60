"""Fuzzing ``load``, ``loads`` and ``verify`` with mutated valid files (hypothesis).

The corpus: several samples dumped uncompressed and with each stdlib codec. Each
example applies one to four byte-level mutations (change, insert, delete, duplicate,
overwrite, truncate, append) and loads the result from bytes, a path, a non-seekable
stream, with ``verify=False`` and memory-mapped, and verifies it without loading.

It fails on:
* any exception outside arraypickle's hierarchy (``ArrayPickleError`` and its
  subclasses are the only legitimate failures: the corpus runs no user code, and
  while fuzzing no global outside those the corpus names may be imported, so a
  mutation cannot make the plain-pickle fallback call arbitrary functions);
* a hang: a Python-level hang is interrupted after ``ARRAYPICKLE_FUZZ_TIMEOUT``
  seconds (default 10) and reported as a failure; a hang inside C code, which no
  signal interrupts, kills the run after three times that (a minute at least), with
  every thread's traceback (``faulthandler``);
* wrong data: a mutated file that loads with checksums verified (or that ``verify``
  passes) must give an object equal to the original. Exceptions to that: with
  ``verify=False`` and mmap, buffer bytes are not checked, by request; from a
  non-seekable stream whose first bytes (the magic) were changed, the rest may parse
  as a plain pickle (see docs/integrity.md).

The time budget: ``ARRAYPICKLE_FUZZ_SECONDS`` (default 60, shared by the targets; 0
skips them). For a longer run::

    ARRAYPICKLE_FUZZ_SECONDS=3600 python -m pytest -m fuzz tests/test_fuzz.py -x
"""

from __future__ import annotations

import faulthandler
import io
import os
import pickle
import pickletools
import signal
import sys
import time
import warnings
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import arraypickle as ap
from arraypickle import ArrayPickleError, _verify
from test_integrity_corpus import (
    COMPRESSIONS,
    SAMPLES,
    OneWay,
    deep_equal,
    dumped,
    only_corpus_globals,
)

pytestmark = pytest.mark.fuzz

BUDGET = float(os.environ.get("ARRAYPICKLE_FUZZ_SECONDS", "60"))
TIMEOUT = float(os.environ.get("ARRAYPICKLE_FUZZ_TIMEOUT", "10"))
HEAD = 16  # mutations before this offset may hit a magic number

if BUDGET <= 0:
    pytest.skip("ARRAYPICKLE_FUZZ_SECONDS=0", allow_module_level=True)


class Hang(BaseException):
    """Raised in the main thread by the per-example alarm (BaseException: not caught
    by the code under test's ``except Exception``)."""


@contextmanager
def time_limit(seconds: float):
    if not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(signum, frame):
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    # The last resort, for a hang in C code: generous, since it ends the whole test
    # process (a worker "crashed"), and a busy VM can stall a sound load for seconds.
    faulthandler.dump_traceback_later(max(seconds * 3, 60), exit=True)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


# -- the corpus and the mutations ------------------------------------------------------------


def corpus(compression: str) -> dict[str, tuple[bytes, object]]:
    out = {}
    for sample in sorted(SAMPLES):
        data = dumped(sample, compression)
        out[sample] = (data, ap.loads(data))
    return out


@st.composite
def mutations(draw, size: int):
    """One mutation of a file of ``size`` bytes: (name, offset, argument)."""
    kind = draw(st.sampled_from(["change", "insert", "delete", "duplicate", "overwrite", "cut"]))
    # Offsets near the ends and the start of records matter most: let hypothesis
    # reach them with integers it likes, plus a spread over the whole file.
    offset = draw(st.one_of(st.integers(0, 80), st.integers(0, max(size - 1, 0))))
    if kind == "change":
        return kind, offset, draw(st.integers(1, 255))
    if kind in ("insert", "overwrite"):
        return kind, offset, draw(st.binary(min_size=1, max_size=24))
    if kind in ("delete", "duplicate"):
        return kind, offset, draw(st.integers(1, 80))
    return kind, offset, None


def mutate(data: bytes, plan) -> tuple[bytes, bool]:
    """Apply ``plan``; also say whether it touched the first ``HEAD`` bytes."""
    out = bytearray(data)
    head = False
    for kind, offset, arg in plan:
        offset = min(offset, len(out))
        head |= offset < HEAD
        if kind == "change" and offset < len(out):
            out[offset] ^= arg
        elif kind == "insert":
            out[offset:offset] = arg
        elif kind == "overwrite":
            out[offset : offset + len(arg)] = arg
        elif kind == "delete":
            del out[offset : offset + arg]
        elif kind == "duplicate":
            out[offset:offset] = out[offset : offset + arg]
        elif kind == "cut":
            del out[offset:]
    return bytes(out), head


# -- the oracle -----------------------------------------------------------------------------------

SOURCES = ("bytes", "path", "stream", "verify=False", "mmap", "verify")


def attempt(source: str, data: bytes, path: str):
    """Load (or verify) ``data`` from ``source``; an ArrayPickleError comes back as such."""
    try:
        if source == "bytes":
            return ap.loads(data)
        if source == "stream":
            return ap.load(OneWay(data))
        if source == "verify":
            return _verify.verify(io.BytesIO(data))
        with open(path, "wb") as f:
            f.write(data)
        if source == "path":
            return ap.load(path)
        if source == "verify=False":
            return ap.load(path, verify=False)
        with warnings.catch_warnings():  # mutated into a compressed or plain file
            warnings.simplefilter("ignore", UserWarning)
            return ap.load(path, mmap_mode="r")
    except ArrayPickleError as exc:
        return exc


MEMO_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT"}


def memo_bomb(data: bytes) -> bool:
    """Whether ``data``, read as a plain pickle, stores into a memo slot beyond its size.

    CPython's C unpickler keeps its memo in an array as long as the largest index a
    PUT names: ``]r`` and four bytes can make it tens of gigabytes, which takes minutes.
    ``pickle.load`` does the same; arraypickle's own files never reach the unpickler
    damaged (their opcodes are checksummed), and a load of a plain pickle walks its
    opcodes for such indices first, unless ``verify=False``: only that load skips
    these inputs (docs/integrity.md).
    """
    registry = ap._plugins.get_registry()
    if any(data.startswith(m) for m in [ap._format.MAGIC, *registry.magics()]):
        return False
    with warnings.catch_warnings():  # pickletools decoding garbage complains
        warnings.simplefilter("ignore")
        try:
            for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
                if opcode.name in MEMO_OPCODES and int(arg) > len(data):
                    return True
        except Exception:
            pass
    return False


def check(source: str, reference, data: bytes, head: bool, path: str):
    if source == "verify=False" and memo_bomb(data):
        return
    with time_limit(TIMEOUT):
        result = attempt(source, data, path)
    if isinstance(result, ArrayPickleError):
        return
    if source in ("verify=False", "mmap") or (source == "stream" and head):
        return  # unchecked buffers by request; a damaged magic on a stream (see above)
    if source == "verify":
        # verify vouched for the file: it must load, as the original (from a stream,
        # when the mutation left several containers back to back).
        with time_limit(TIMEOUT):
            result = ap.load(OneWay(data)) if result.containers > 1 else ap.loads(data)
    assert deep_equal(result, reference), f"{source}: a mutated file loaded different data"


def fuzz_target(files: dict[str, tuple[bytes, object]], path: str):
    names = sorted(files)

    @st.composite
    def examples(draw):
        name = draw(st.sampled_from(names))
        data, _ = files[name]
        plan = draw(st.lists(mutations(len(data)), min_size=1, max_size=4))
        source = draw(st.sampled_from(SOURCES))
        return name, plan, source

    def one(example):
        name, plan, source = example
        original, reference = files[name]
        data, head = mutate(original, plan)
        check(source, reference, data, head, path)

    return examples(), one


def run_until(deadline: float, strategy, body) -> int:
    """Run hypothesis rounds until ``deadline`` (monotonic); return the examples run."""
    count = rounds = 0
    batch = 25
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return count
        started = time.monotonic()

        @settings(
            max_examples=batch,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )
        @given(strategy)
        def round_(example):
            body(example)

        if settings.default.derandomize:
            # A repeatable run still gives each round other examples than the last
            # (the same function would otherwise draw the same ones every round), from
            # the round's number: a failure recurs on a rerun that gets that far.
            round_ = seed(rounds)(round_)
        round_()
        count += batch
        rounds += 1
        per_example = (time.monotonic() - started) / batch
        left = deadline - time.monotonic()
        # Rounds of half the time left, so the last one ends close to the deadline.
        batch = int(left / max(per_example, 1e-4) / 2)
        if batch < 5:
            return count
        batch = min(batch, 2000)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_fuzz_load(compression, tmp_path):
    deadline = time.monotonic() + BUDGET / len(COMPRESSIONS)  # setup included
    files = corpus(compression)
    strategy, body = fuzz_target(files, str(tmp_path / "fuzzed.pkl"))
    with only_corpus_globals():
        ran = run_until(deadline, strategy, body)
    print(f"fuzz {compression}: {ran} examples", file=sys.stderr)
    assert ran > 0


def test_mutations_apply():
    data = bytes(range(10))
    assert mutate(data, [("change", 0, 1)]) == (b"\x01" + data[1:], True)
    assert mutate(data, [("cut", 3, None)]) == (data[:3], True)
    assert mutate(data, [("duplicate", 8, 5)])[0] == data + data[8:]
    assert mutate(data, [("delete", 2, 100)])[0] == data[:2]
    assert mutate(data, [("insert", 100, b"z")])[0] == data + b"z"
    assert mutate(data, [("overwrite", 9, b"xy")])[0] == data[:9] + b"xy"


def test_memo_bombs_are_recognised():
    assert memo_bomb(b"]rBZh11AY&SY\xef")
    assert not memo_bomb(pickle.dumps([[1]] * 3, protocol=1))
    assert not memo_bomb(dumped("small_mixed", "none"))


def test_the_guard_refuses_other_globals():
    with only_corpus_globals() as allowed:
        assert ("arraypickle._format", "rebuild") in allowed
        with pytest.raises(ap.CorruptFileError, match="refused"):
            ap.loads(pickle.dumps(os.getcwd))
    assert ap.loads(pickle.dumps(os.getcwd)) is os.getcwd


def test_hangs_are_caught():
    with pytest.raises(Hang), time_limit(0.2):
        while True:
            pass
