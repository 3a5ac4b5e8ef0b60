"""A coverage-guided fuzz target (atheris, libFuzzer) over ``loads``, streams and ``verify``.

Optional: atheris is not a test dependency. Where it is installed, the test below runs
the target for a few seconds; for a real run, give it a corpus directory (seeded with
valid files of every codec on first use) and a time::

    pip install atheris
    python tests/test_fuzz_atheris.py -max_total_time=3600 -timeout=10 /tmp/ap-corpus

It stops on any exception outside ``ArrayPickleError`` (libFuzzer saves the input as
``crash-*``) and on a hang beyond ``-timeout`` (``timeout-*``). Wrong data it cannot
tell (its inputs are not tied to an original): that is the hypothesis target's job.
As there, globals are limited to the corpus's. Plain-pickle memo bombs (atheris found
one within minutes, ``test_fuzz.memo_bomb``) are loaded: the loads below walk a plain
pickle's opcodes for them first.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def seed(directory: str) -> None:
    """Fill an empty corpus directory with valid files."""
    from test_integrity_corpus import COMPRESSIONS, SAMPLES, dumped

    os.makedirs(directory, exist_ok=True)
    if os.listdir(directory):
        return
    for sample in SAMPLES:
        for compression in COMPRESSIONS:
            with open(os.path.join(directory, f"{sample}-{compression}"), "wb") as f:
                f.write(dumped(sample, compression))


def main(argv: list[str]) -> None:
    import atheris

    sys.path.insert(0, HERE)
    import numpy  # noqa: F401  (imported first: only arraypickle is instrumented)
    import pluggy  # noqa: F401
    import xxhash  # noqa: F401

    with atheris.instrument_imports(include=["arraypickle"]):
        import arraypickle as ap
        from arraypickle import ArrayPickleError, _verify
    from test_integrity_corpus import OneWay, only_corpus_globals

    for arg in argv[1:]:
        if not arg.startswith("-") and not os.path.isfile(arg):  # a file: a replay
            seed(arg)

    def one_input(data: bytes) -> None:
        for attempt in (
            lambda: ap.loads(data),
            lambda: ap.load(OneWay(data)),
            lambda: _verify.verify(io.BytesIO(data)),
        ):
            with contextlib.suppress(ArrayPickleError):
                attempt()

    guard = only_corpus_globals()
    guard.__enter__()  # atheris.Fuzz() never returns
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def test_atheris_target_runs(tmp_path):
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    done = subprocess.run(
        [sys.executable, __file__, "-runs=500", "-timeout=10", str(corpus)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done 500 runs" in done.stderr


if __name__ == "__main__":
    main(sys.argv)
