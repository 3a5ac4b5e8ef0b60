"""dump/load/dumps/loads as joblib users call them: protocols, failures, public names."""

from __future__ import annotations

import os
import pickle
import threading

import numpy as np
import pytest

import arraypickle as ap
from checks import assert_same
from conftest import COMPRESS_SETTINGS
from layout import buffers, records


def sample():
    a = np.arange(50_000.0).reshape(250, 200)
    return {"a": a, "t": a[::2, ::3].T, "m": np.matrix([[1, 2]]), "l": [1, "x", (2.5, None)]}


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5, -1, None])
def test_every_protocol_round_trips_with_arrays_out_of_band(protocol):
    obj = sample()
    data = ap.dumps(obj, protocol=protocol)
    # One buffer record per array, with exactly its bytes, whatever the protocol.
    sizes = sorted(r.length for r in buffers(data))
    assert sizes == sorted([obj["a"].nbytes, obj["t"].nbytes, obj["m"].nbytes])
    opcodes = b"".join(
        data[r.offset : r.offset + r.length] for r in records(data) if r.kind == b"P"
    )
    if protocol is None or protocol in (5, -1):
        assert opcodes[:2] == b"\x80\x05"
    elif protocol >= 2:
        assert opcodes[:2] == bytes([0x80, protocol])
    assert_same(ap.loads(data), obj)


def test_the_default_protocol_is_5():
    assert ap.dumps(sample()) == ap.dumps(sample(), protocol=5)


def test_dumps_and_loads():
    obj = sample()
    for compress in COMPRESS_SETTINGS:
        data = ap.dumps(obj, compress=compress)
        assert isinstance(data, bytes)
        assert_same(ap.loads(data), obj)
    assert ap.loads(ap.dumps(None)) is None
    assert ap.loads(pickle.dumps(obj["l"])) == obj["l"]


def test_dumps_is_deterministic():
    assert ap.dumps(sample(), compress="gzip") == ap.dumps(sample(), compress="gzip")


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("refusing to pickle, deep inside")


FAILING = {
    "lambda_deep": lambda: {"a": np.ones(300_000), "deep": [[{"f": lambda: 1}]]},
    "lock_after_arrays": lambda: [np.ones((500, 500)), np.arange(10)[::2], threading.Lock()],
    "reduce_raises": lambda: {"x": [Unpicklable()], "a": np.ones(1000)},
    "first_thing": lambda: threading.Lock(),
}


@pytest.mark.parametrize("compress", [0, "zlib", "gzip", "bz2"])
@pytest.mark.parametrize("case", list(FAILING))
def test_a_failed_dump_leaves_the_existing_file_intact(tmp_path, case, compress):
    path = tmp_path / "precious.pkl"
    ap.dump({"old": np.arange(5)}, path)
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError, RuntimeError)):
        ap.dump(FAILING[case](), path, compress=compress)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["precious.pkl"]  # no temporary file left behind
    assert ap.load(path)["old"].tolist() == [0, 1, 2, 3, 4]


def test_a_failed_dump_to_a_new_path_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="deep inside"):
        ap.dump(FAILING["reduce_raises"](), tmp_path / "new.pkl.gz")
    assert os.listdir(tmp_path) == []


def test_a_successful_dump_replaces_the_file_and_keeps_its_mode(tmp_path):
    path = tmp_path / "f.pkl"
    ap.dump(1, path)
    os.chmod(path, 0o640)
    ap.dump(2, path)
    assert ap.load(path) == 2
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["f.pkl"]


def test_public_names():
    expected = {
        "dump",
        "load",
        "dumps",
        "loads",
        "codecs",
        "wrappers",
        "register_codec",
        "hookimpl",
        "ArrayPickleError",
        "CorruptFileError",
        "UnknownCodecError",
        "PluginConflictError",
        "MissingDependencyError",
        "NumpyVersionError",
        "EmptyFileError",
    }
    assert expected <= set(ap.__all__)
    for name in ap.__all__:
        assert hasattr(ap, name), name
    assert issubclass(ap.CorruptFileError, ap.ArrayPickleError)
    assert issubclass(ap.CorruptFileError, ValueError)
    # Not pickle's: the C unpickler turns an UnpicklingError from its file into EOFError.
    assert not issubclass(ap.CorruptFileError, pickle.UnpicklingError)
    assert not issubclass(ap.CorruptFileError, EOFError)  # a truncation is no clean end
    assert issubclass(ap.UnknownCodecError, ap.ArrayPickleError)
    assert issubclass(ap.UnknownCodecError, ValueError)
    assert issubclass(ap.PluginConflictError, ap.ArrayPickleError)
    assert issubclass(ap.MissingDependencyError, ap.ArrayPickleError)
    assert issubclass(ap.MissingDependencyError, ImportError)
    assert issubclass(ap.NumpyVersionError, ap.ArrayPickleError)
    assert issubclass(ap.NumpyVersionError, ValueError)
    assert not issubclass(ap.NumpyVersionError, ap.CorruptFileError)  # the file is sound
    assert issubclass(ap.EmptyFileError, ap.CorruptFileError)
    assert issubclass(ap.EmptyFileError, EOFError)  # as pickle.load at a stream's end
    assert issubclass(ap.InvalidArgumentError, ap.ArrayPickleError)
    assert issubclass(ap.InvalidArgumentError, ValueError)  # what joblib raised
    assert issubclass(ap.InvalidArgumentError, TypeError)
    assert set(ap.codecs()) >= {"zlib", "gzip", "bz2", "lzma", "xz"}


def test_codecs_returns_a_copy():
    codecs = ap.codecs()
    codecs.clear()
    assert "zlib" in ap.codecs()


def test_a_container_read_by_plain_pickle_says_what_to_do():
    data = ap.dumps({"a": np.arange(3)})
    opcodes = b"".join(
        data[r.offset : r.offset + r.length] for r in records(data) if r.kind == b"P"
    )
    with pytest.raises(ap.ArrayPickleError, match=r"arraypickle\.load"):
        pickle.loads(opcodes)


def test_threads_dump_and_load_at_once(fresh_registry):
    # The first use builds the registry: several threads race for it here.
    errors = []

    def work(seed):
        try:
            for i, compress in enumerate(["zlib", 0, "gzip", 0, "bz2"] * 2):
                obj = {"a": np.arange(2000.0) * seed + i, "v": np.arange(50)[:: -seed - 1]}
                assert_same(ap.loads(ap.dumps(obj, compress=compress)), obj)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
