"""Memory bounds, measured as peak RSS in a fresh subprocess.

Dumping a 200 MiB array plus a 100 MiB non-contiguous view of it may hold at most
48 MiB beyond the data (uncompressed, zlib, gzip); loading may hold at most 48 MiB
beyond the loaded result. The peak is the kernel's high-water mark (VmHWM, reset by
writing 5 to /proc/self/clear_refs) where Linux offers it, else psutil sampling.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from peak_rss import PEAK_SCRIPT, run_measured

MiB = 1 << 20
LIMIT = 48 * MiB

SCRIPT = PEAK_SCRIPT + textwrap.dedent(
    r"""
    import numpy as np
    import arraypickle as ap

    path, compress = sys.argv[1], json.loads(sys.argv[2])
    compress = tuple(compress) if isinstance(compress, list) else compress
    ap.dumps(np.arange(3), compress=compress)  # plugins and codecs loaded before measuring

    a = np.empty((10240, 2560))  # 200 MiB, every page touched
    a[:] = np.arange(2560) % 97
    obj = {"a": a, "view": a[:, ::2]}  # the view: 100 MiB, non-contiguous
    peak = Peak()
    ap.dump(obj, path, compress=compress)
    dump_extra = peak.extra()
    del obj, a
    peak = Peak()
    out = ap.load(path)
    load_extra = peak.extra() - sum(v.nbytes for v in out.values())
    assert out["view"][5, 7] == 14 % 97 and out["a"].shape == (10240, 2560)
    print(json.dumps({"dump": dump_extra, "load": load_extra, "hwm": peak.hwm}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("compress", [0, "zlib", "gzip"])
def test_dump_and_load_hold_bounded_extra_memory(tmp_path, compress):
    measured = run_measured(SCRIPT, str(tmp_path / "big.pkl"), json.dumps(compress))
    extra_dump, extra_load = measured["dump"] / MiB, measured["load"] / MiB
    assert measured["dump"] <= LIMIT, f"dump held {extra_dump:.1f} MiB beyond the data"
    assert measured["load"] <= LIMIT, f"load held {extra_load:.1f} MiB beyond the result"


PLAIN_PICKLE = textwrap.dedent(
    r"""
    import json, pickle, sys
    import numpy as np
    import arraypickle as ap

    path = sys.argv[1]
    with open(path, "wb") as f:  # numpy pickles the array in band (BYTEARRAY8)
        pickle.dump({"a": np.ones(25 << 20)}, f, protocol=5)
    ap.dumps(np.arange(3))

    def status(key):
        with open("/proc/self/status") as f:
            return int(next(l for l in f if l.startswith(key)).split()[1]) * 1024

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status("VmRSS")
    with open(path, "rb") as f:  # a file object: read through the sniffing wrappers
        out = ap.load(f)
    print(json.dumps({"load": status("VmHWM") - base - out["a"].nbytes}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_plain_pickle_load_reads_in_band_arrays_in_place(tmp_path):
    extra = run_measured(PLAIN_PICKLE, str(tmp_path / "plain.pkl"))["load"]
    assert extra <= LIMIT, f"loading a 200 MiB plain pickle held {extra / MiB:.1f} MiB more"


BIG_BYTES = PEAK_SCRIPT + textwrap.dedent(
    r"""
    import arraypickle as ap

    path, compress, kind = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    ap.dumps(b"", compress=compress)  # plugins and codecs loaded before measuring
    data = bytes(range(251)) * ((200 << 20) // 251)
    ap.dump({"b": bytearray(data) if kind == "bytearray" else data}, path, compress=compress)
    del data
    peak = Peak()
    out = ap.load(path)["b"]
    extra = peak.extra() - len(out)
    assert type(out).__name__ == kind and out[251 * 1000 + 7] == 7
    print(json.dumps({"load": extra}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bytes", "bytearray"])
@pytest.mark.parametrize("compress", [0, "gzip"])
def test_a_big_bytes_value_loads_into_its_own_memory(tmp_path, compress, kind):
    # The pickler writes a big bytes payload as a record of its own: it was read whole
    # into a buffer growing by doubling, then copied into the bytes (2.05x the value).
    extra = run_measured(BIG_BYTES, str(tmp_path / "b.pkl"), json.dumps(compress), kind)["load"]
    assert extra <= LIMIT, f"loading 200 MiB of {kind} held {extra / MiB:.1f} MiB more"
