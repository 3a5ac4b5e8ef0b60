"""A real S3 endpoint: moto's server on 127.0.0.1, reached through s3fs.

The server runs in a subprocess started by a module fixture (free port chosen by the
OS, stopped after the module); clients get fake credentials and the endpoint from the
environment, as an application configured by ``AWS_*`` variables would.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _format as fmt
from conftest import STDLIB_CODECS

s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

SERVER = textwrap.dedent(
    """
    import logging, sys
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # until the test module closes our stdin
    server.stop()
    """
)

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    # the local server is reached directly even where a proxy is configured
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


@pytest.fixture(scope="module")
def endpoint():
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            pytest.skip(f"moto's server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture(scope="module")
def s3_env(endpoint):
    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAKE_ENV.items():
            mp.setenv(key, value)
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        s3fs.S3FileSystem.clear_instance_cache()
        yield {**FAKE_ENV, "AWS_ENDPOINT_URL": endpoint}
    s3fs.S3FileSystem.clear_instance_cache()
    # Close the dropped filesystems' aiohttp sessions now, on fsspec's IO thread, rather
    # than from finalizers at interpreter exit, when that daemon thread may be stopping.
    gc.collect()


@pytest.fixture
def bucket(s3_env):
    """A fresh bucket; yields (s3fs filesystem, bucket name)."""
    fs = s3fs.S3FileSystem()
    name = f"ap-{uuid.uuid4().hex[:16]}"
    fs.mkdir(name)
    return fs, name


class Boom:
    def __reduce__(self):
        raise RuntimeError("boom")


def uploads(fs, name):
    return fs.call_s3("list_multipart_uploads", Bucket=name).get("Uploads", [])


def sample() -> dict:
    a = np.arange(20_000, dtype=np.float64).reshape(100, 200)
    return {"a": a, "view": a[::3, ::2], "objects": np.array([1, "x"], dtype=object), "t": "s"}


def check_sample(out: dict) -> None:
    ref = sample()
    np.testing.assert_array_equal(out["a"], ref["a"])
    np.testing.assert_array_equal(out["view"], ref["view"])
    assert out["objects"].tolist() == [1, "x"]
    assert out["t"] == "s"


@pytest.mark.parametrize("compress", [0, *STDLIB_CODECS])
def test_round_trip(bucket, compress):
    fs, name = bucket
    url = f"s3://{name}/dir/obj.pkl"
    assert ap.dump(sample(), url, compress=compress) == [url]
    head = fs.cat_file(f"{name}/dir/obj.pkl", start=0, end=8)
    assert head.startswith(fmt.MAGIC) == (not compress)
    check_sample(ap.load(url))


@pytest.mark.parametrize("compress", [0, ("gzip", 1)])
def test_multipart_round_trip(bucket, compress):
    fs, name = bucket
    url = f"s3://{name}/big.pkl"
    data = np.random.default_rng(0).random(2_000_000)  # 16 MB: several parts, ranged reads
    ap.dump({"data": data}, url, compress=compress)
    etag = fs.info(url)["ETag"]
    assert "-" in etag  # the ETag of a multipart upload: "<md5>-<parts>"
    np.testing.assert_array_equal(ap.load(url)["data"], data)
    assert uploads(fs, name) == []


def test_storage_options_instead_of_the_environment(bucket, endpoint, monkeypatch):
    _, name = bucket
    for key in (*FAKE_ENV, "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    s3fs.S3FileSystem.clear_instance_cache()
    options = {"key": "testing", "secret": "testing", "endpoint_url": endpoint}
    url = f"s3://{name}/opts.pkl"
    ap.dump(sample(), url, storage_options=options)
    check_sample(ap.load(url, storage_options=options))


def test_mmap_mode_warns_and_loads(bucket):
    _, name = bucket
    url = f"s3://{name}/m.pkl"
    ap.dump(sample(), url)
    with pytest.warns(UserWarning, match="needs a local file"):
        out = ap.load(url, mmap_mode="r")
    check_sample(out)


def test_missing_key(bucket):
    _, name = bucket
    with pytest.raises(FileNotFoundError):
        ap.load(f"s3://{name}/nothing.pkl")


@pytest.mark.parametrize("size", [1000, 3 << 20], ids=["one-shot", "multipart"])
def test_failed_dump_keeps_the_old_object(bucket, size):
    fs, name = bucket
    url = f"s3://{name}/k.pkl"
    ap.dump({"old": 1}, url)
    with pytest.raises(RuntimeError, match="boom"):
        ap.dump([np.zeros(size), Boom()], url)  # 24 MB: parts were uploaded
    assert ap.load(url) == {"old": 1}
    assert fs.ls(name, detail=False, refresh=True) == [f"{name}/k.pkl"]
    assert uploads(fs, name) == []  # the multipart upload was aborted


def test_failed_dump_of_a_new_object_leaves_nothing(bucket):
    fs, name = bucket
    with pytest.raises(RuntimeError, match="boom"):
        ap.dump([np.zeros(3 << 20), Boom()], f"s3://{name}/new.pkl", compress="gzip")
    assert fs.ls(name, detail=False, refresh=True) == []
    assert uploads(fs, name) == []


def test_progress_over_s3(bucket):
    fs, name = bucket
    url = f"s3://{name}/p.pkl"
    dumped, loaded = [], []
    ap.dump(np.ones(1 << 20), url, progress=lambda d, t: dumped.append((d, t)))
    ap.load(url, progress=lambda d, t: loaded.append((d, t)))
    size = fs.info(url)["size"]
    assert dumped[0] == (0, None)
    assert dumped[-1] == (size, size)
    assert loaded[0] == (0, size)
    assert loaded[-1] == (size, size)


# -- memory: peak RSS of a client process, moto serving it from another -----------------

CHILD = textwrap.dedent(
    """
    import ctypes, gc, json, sys, threading
    import numpy as np
    import arraypickle as ap

    url, nbytes = sys.argv[1], int(sys.argv[3])
    compress = json.loads(sys.argv[2])
    compress = tuple(compress) if isinstance(compress, list) else compress

    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024

    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except OSError:
        trim = lambda pad: None

    def reset_peak():
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def measure(fn):
        gc.collect()
        trim(0)  # freed heap from the warm-up is not memory this call needs
        base = status("VmRSS")
        if reset_peak():
            result = fn()
            return result, status("VmHWM") - base
        import psutil
        proc, peak, done = psutil.Process(), [0], threading.Event()
        def sample():
            while not done.wait(0.001):
                peak[0] = max(peak[0], proc.memory_info().rss)
        t = threading.Thread(target=sample); t.start()
        try:
            result = fn()
        finally:
            done.set(); t.join()
        return result, max(peak[0], status("VmRSS")) - base

    # Warm up: botocore's models, connections, a multipart upload and ranged reads.
    ap.dump(np.ones(3 << 19), url + ".warm", compress=compress)
    ap.load(url + ".warm")
    rng = np.random.default_rng(0)
    if compress:
        data = rng.integers(0, 16, nbytes, dtype=np.uint8)  # compresses, not trivially
    else:
        data = rng.random(nbytes // 8)
    _, dump_extra = measure(lambda: ap.dump({"data": data}, url, compress=compress))
    del data
    out, load_extra = measure(lambda: ap.load(url))
    load_extra -= out["data"].nbytes
    print(json.dumps({"dump": dump_extra, "load": load_extra}))
    """
)

LIMIT = 48 << 20


def run_child(env, url, compress, nbytes) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, json.dumps(compress), str(nbytes)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for peak RSS")
@pytest.mark.parametrize(
    ("compress", "nbytes"),
    [(0, 200_000_000), (["gzip", 1], 64_000_000)],
    ids=["uncompressed-200MB", "gzip-64MB"],
)
def test_memory_is_bounded(bucket, s3_env, compress, nbytes):
    """Peak RSS of the client above what it held before the call (minus the result)."""
    _, name = bucket
    extra = run_child(s3_env, f"s3://{name}/big.pkl", compress, nbytes)
    report = f"dump +{extra['dump'] / 2**20:.1f} MiB, load +{extra['load'] / 2**20:.1f} MiB"
    print(f"S3 {compress or 'uncompressed'} {nbytes / 1e6:.0f} MB: {report}")
    assert extra["dump"] <= LIMIT, report
    assert extra["load"] <= LIMIT, report
