"""threads=None: the affinity mask, bounded by a cgroup CPU quota and the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import arraypickle
from arraypickle import InvalidArgumentError, _cores
from arraypickle._cores import MAX_THREADS_VAR, cgroup_cpu_limit, usable_cores


def _tree(root: Path, files: dict[str, str], membership: str) -> tuple[str, str]:
    """A fake cgroup mount under ``root`` and a fake /proc/self/cgroup."""
    for name, text in files.items():
        path = root / "fs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "fs").mkdir(exist_ok=True)
    proc = root / "cgroup"
    proc.write_text(membership)
    return str(root / "fs"), str(proc)


@pytest.mark.parametrize(
    ("files", "membership", "expected"),
    [
        # cgroup v2, in a container (its own cgroup namespace): docker --cpus 1.5
        ({"cpu.max": "150000 100000\n"}, "0::/\n", 2),
        ({"cpu.max": "max 100000\n"}, "0::/\n", None),
        ({"cpu.max": "25000 100000\n"}, "0::/\n", 1),  # a quarter CPU: still one thread
        # v2 seen from the host: the tightest level on the way to the root binds
        (
            {"a/cpu.max": "300000 100000", "a/b/cpu.max": "max 100000", "cpu.max": "max"},
            "0::/a/b\n",
            3,
        ),
        ({"a/cpu.max": "800000 100000", "a/b/cpu.max": "200000 100000"}, "0::/a/b\n", 2),
        # v1 (this machine's layout), the container's own subtree mounted at the root
        (
            {"cpu,cpuacct/cpu.cfs_quota_us": "400000", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
            "12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n",
            4,
        ),
        (
            {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"},
            "1:cpu:/\n",
            None,
        ),
        # v1 with the full hierarchy: the process's own level
        (
            {
                "cpu/cpu.cfs_quota_us": "-1",
                "cpu/cpu.cfs_period_us": "100000",
                "cpu/job/cpu.cfs_quota_us": "200000",
                "cpu/job/cpu.cfs_period_us": "100000",
            },
            "1:cpu:/job\n",
            2,
        ),
        # unreadable or odd contents never count as a quota
        ({"cpu.max": "lots 100000"}, "0::/\n", None),
        ({"cpu.max": "100000 0"}, "0::/\n", None),
        ({"cpu.max": "\xff\xfe"}, "0::/\n", None),
        ({}, "0::/\n", None),
        ({"cpu.max": "200000 100000"}, "garbage\n", None),
        ({"cpu.max": "200000 100000"}, "0::/../../etc\n", 2),  # no escape from the mount
    ],
)
def test_cgroup_quota(tmp_path, files, membership, expected):
    root, proc = _tree(tmp_path, files, membership)
    assert cgroup_cpu_limit(root, proc) == expected


def test_no_cgroup_file_system(tmp_path):
    assert cgroup_cpu_limit(str(tmp_path / "none"), str(tmp_path / "none")) is None
    (tmp_path / "cgroup").write_bytes(b"0::/\xff\n")  # not UTF-8: unreadable, no quota
    assert cgroup_cpu_limit(str(tmp_path), str(tmp_path / "cgroup")) is None


def test_a_quota_bounds_the_default(monkeypatch):
    monkeypatch.delenv(MAX_THREADS_VAR, raising=False)
    monkeypatch.setattr(_cores, "_cgroup_limit", lambda: 1)
    assert usable_cores() == 1
    assert arraypickle._parallel.resolve_threads(None) == 1
    assert arraypickle._parallel.resolve_threads(3) == 3  # an explicit count wins


def test_the_environment_caps_the_default(monkeypatch):
    monkeypatch.setenv(MAX_THREADS_VAR, "1")
    assert usable_cores() == 1
    assert arraypickle._parallel.resolve_threads(None) == 1
    monkeypatch.setenv(MAX_THREADS_VAR, " 10000 ")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    assert usable_cores() <= (affinity or os.cpu_count() or 1)


@pytest.mark.parametrize("bad", ["0", "-2", "two", "", "1.5"])
def test_a_bad_environment_value_is_named(monkeypatch, bad):
    monkeypatch.setenv(MAX_THREADS_VAR, bad)
    with pytest.raises(InvalidArgumentError, match=MAX_THREADS_VAR):
        usable_cores()
    with pytest.raises(ValueError, match=MAX_THREADS_VAR):
        arraypickle.dumps(b"x" * 10, compress=3)


def test_a_real_cgroup_quota(tmp_path):
    """End to end where a cgroup v1 cpu hierarchy is writable (root on this kind of
    machine): a process put in a cgroup granted half a CPU compresses on 1 thread."""
    mount = Path("/sys/fs/cgroup/cpu")
    group = mount / f"arraypickle-test-{os.getpid()}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"no writable cgroup v1 cpu hierarchy ({exc})")
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text("50000")
        script = (
            f"import os, sys; open({str(group / 'cgroup.procs')!r}, 'w').write(str(os.getpid()));"
            "from arraypickle._cores import usable_cores; print(usable_cores())"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
        assert int(out) == 1
    finally:
        group.rmdir()
