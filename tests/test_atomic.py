"""Atomic dumps to a path: a temporary file beside the target, renamed over it.

A dump killed with SIGKILL, or failing with an exception, leaves the old file intact;
dumps racing on one path from several processes leave one complete version.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _atomic

TESTS = os.path.dirname(os.path.abspath(__file__))


def temp_files(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


def wait_for(condition, what: str, timeout: float = 120.0):
    """Poll the file system until ``condition()`` is truthy (the poll is not a timing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


# -- a dump killed mid-write ------------------------------------------------------------

KILLED_DUMP = textwrap.dedent(
    """
    import sys
    import numpy as np
    import arraypickle as ap

    class Stall:
        # Reached after all the arrays: blocks on stdin, which never gets data, so the
        # dump is still unfinished whenever the parent kills it.
        def __reduce__(self):
            sys.stdin.read(1)
            return (int, (0,))

    value = [np.full(1 << 19, float(i)) for i in range(64)] + [Stall()]  # 256 MiB
    ap.dump(value, sys.argv[1], compress=sys.argv[2] if sys.argv[2] != "none" else 0)
    """
)


@pytest.mark.parametrize("compress", ["none", "zlib"])
def test_dump_killed_mid_write_leaves_the_old_file(compress, tmp_path):
    target = tmp_path / "data.pkl"
    old = {"version": 1, "array": np.arange(1000)}
    ap.dump(old, target)
    before = target.read_bytes()
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_DUMP, str(target), compress],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Kill once the temporary file exists and has grown past a threshold (it is created
    # empty, so it is growing); the constant arrays compress about 1000 times.
    threshold = (8 << 20) if compress == "none" else (64 << 10)
    try:

        def growing():
            for name in temp_files(tmp_path):
                try:
                    size = os.stat(tmp_path / name).st_size
                except FileNotFoundError:
                    continue
                if size >= threshold:
                    return name, size
            if child.poll() is not None:
                raise AssertionError(f"the dump ended: {child.stderr.read().decode()}")
            return None

        name, size = wait_for(growing, "the temporary file to grow")
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == before
    loaded = ap.load(target)
    assert loaded["version"] == 1
    np.testing.assert_array_equal(loaded["array"], old["array"])
    # SIGKILL leaves no chance to clean up: the partial temporary file stays behind,
    # hidden, beside the target; it is not the target and is never read.
    assert temp_files(tmp_path) == [name]
    assert os.stat(tmp_path / name).st_size >= size


# -- a dump failing with an exception ---------------------------------------------------------


class Explodes:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


class Interrupts:
    def __reduce__(self):
        raise KeyboardInterrupt


@pytest.mark.parametrize("compress", [0, "gzip", "xz"])
@pytest.mark.parametrize("error", [Explodes, Interrupts])
def test_exception_removes_the_temporary_file(compress, error, tmp_path):
    target = tmp_path / "data.pkl"
    ap.dump("old", target)
    before = target.read_bytes()
    expected = RuntimeError if error is Explodes else KeyboardInterrupt
    with pytest.raises(expected):
        ap.dump([np.ones(1 << 20), error(), np.ones(10)], target, compress=compress)
    assert target.read_bytes() == before
    assert ap.load(target) == "old"
    assert os.listdir(tmp_path) == ["data.pkl"]


def test_exception_on_a_new_path_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        ap.dump([np.ones(1000), Explodes()], tmp_path / "new.pkl")
    assert os.listdir(tmp_path) == []


# -- concurrent dumps ---------------------------------------------------------------------------

RACER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import arraypickle as ap

    path, ident, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sys.stdin.read(1)  # the starting gun: all racers wait for it
    for r in range(rounds):
        value = {"ident": ident, "round": r, "data": np.full(1 << 20, ident, np.int64)}
        ap.dump(value, path)
    """
)


def test_concurrent_dumps_leave_one_complete_version(tmp_path):
    target = tmp_path / "shared.pkl"
    ap.dump({"ident": -1, "round": 0, "data": np.full(1 << 20, -1, np.int64)}, target)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(target), str(ident), "6"],
            stdin=subprocess.PIPE,
        )
        for ident in range(4)
    ]
    seen: set[int] = set()
    problems: list[str] = []
    stop = threading.Event()

    def reader():
        # Whoever wins, the path always holds one complete, loadable version.
        while not stop.is_set():
            try:
                value = ap.load(target)
            except Exception as exc:
                problems.append(repr(exc))
                return
            if not np.all(value["data"] == value["ident"]):
                problems.append(f"mixed data in {value['ident']}")
            seen.add(value["ident"])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for racer in racers:
            racer.stdin.write(b"x")
            racer.stdin.close()
        codes = [racer.wait(timeout=300) for racer in racers]
    finally:
        stop.set()
        thread.join()
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    assert codes == [0, 0, 0, 0]
    assert problems == []
    final = ap.load(target)
    assert final["ident"] in range(4)
    assert final["round"] == 5
    assert np.all(final["data"] == final["ident"])
    assert os.listdir(tmp_path) == ["shared.pkl"]  # no temporary file left
    assert seen  # the reader did read while the racers ran


# -- what is kept, what is followed --------------------------------------------------------------


def test_permissions_of_an_existing_file_are_kept(tmp_path):
    target = tmp_path / "data.pkl"
    ap.dump(1, target)
    os.chmod(target, 0o640)
    ap.dump(2, target)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    os.chmod(target, 0o604)
    ap.dump(3, target, compress="gzip")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o604
    assert ap.load(target) == 3


def test_new_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        ap.dump(1, tmp_path / "new.pkl")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.pkl").st_mode) == 0o640


def test_dump_through_a_symlink_updates_the_target(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    target = real / "data.pkl"
    ap.dump("old", target)
    link = tmp_path / "link.pkl"
    link.symlink_to(target)
    ap.dump("new", link)
    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    assert ap.load(target) == "new"
    assert sorted(os.listdir(real)) == ["data.pkl"]
    # A dangling link: the file is created where it points.
    dangling = tmp_path / "dangling.pkl"
    dangling.symlink_to(real / "later.pkl")
    ap.dump("later", dangling)
    assert dangling.is_symlink()
    assert ap.load(real / "later.pkl") == "later"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    loaded = {}

    def read():
        loaded["value"] = ap.load(fifo)

    thread = threading.Thread(target=read)
    thread.start()
    ap.dump({"a": np.arange(100_000)}, fifo)
    thread.join()
    np.testing.assert_array_equal(loaded["value"]["a"], np.arange(100_000))
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["pipe"]


def test_a_device_is_written_in_place():
    assert ap.dump(np.ones(1000), os.devnull) == [os.devnull]
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


# -- fsync ---------------------------------------------------------------------------------------


def test_fsync_flushes_the_data_then_the_directory(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(_atomic.os, "fsync", fsync)
    ap.dump(np.ones(10), tmp_path / "a.pkl")
    assert synced == []
    ap.dump(np.ones(10), tmp_path / "a.pkl", fsync=True)
    assert synced == ["file", "dir"]
    synced.clear()
    ap.dump(np.ones(10), tmp_path / "b.pkl.gz", fsync=True)
    assert synced == ["file", "dir"]
    assert ap.load(tmp_path / "b.pkl.gz").sum() == 10


def test_fsync_is_keyword_only(tmp_path):
    with pytest.raises(TypeError):
        ap.dump(1, tmp_path / "a.pkl", 0, None, True)


def test_a_missing_directory_is_named_as_the_caller_gave_it(tmp_path):
    target = tmp_path / "missing" / "x.pkl"
    with pytest.raises(FileNotFoundError) as info:
        ap.dump(1, target)
    assert info.value.filename == str(target)
    assert ".tmp" not in str(info.value)


@pytest.mark.parametrize("name", ["", "no-such-dir/", "a-dir/"])
def test_an_empty_name_or_a_directory_name_fails_as_open_does(tmp_path, monkeypatch, name):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "a-dir").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(OSError) as info:
        ap.dump(1, name)
    with pytest.raises(OSError) as expected:
        open(name, "wb")  # noqa: SIM115 - it fails
    assert type(info.value) is type(expected.value)
    assert info.value.filename == name and ".tmp" not in str(info.value)
    assert temp_files(tmp_path) == temp_files(tmp_path / "work") == []


@contextlib.contextmanager
def unprivileged():
    """Permission bits apply to this process: as root, its effective user is nobody's."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.seteuid(65534)
    except OSError as exc:  # a user namespace that does not map nobody's uid
        pytest.skip(f"running as root, and cannot become nobody ({exc})")
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def shared_dir():
    """A directory anyone may make files in (not under tmp_path, whose parents are 0700)."""
    path = pathlib.Path(tempfile.mkdtemp())
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path)


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX users")
@pytest.mark.parametrize("compress", [0, "gzip"])
def test_a_read_only_file_is_not_replaced(shared_dir, compress):
    # As joblib's open(path, "wb") refuses it: a read-only file guards against
    # overwriting, though its directory would allow the rename.
    shared = shared_dir
    target = shared / "model.pkl"
    ap.dump({"v": 1}, target)
    os.chmod(target, 0o444)
    ap.dumps(0, compress=compress)  # lazy imports done, as the unprivileged user could not
    with unprivileged(), pytest.raises(PermissionError) as info:
        ap.dump({"v": 2}, target, compress=compress)
    assert info.value.filename == str(target)
    assert ap.load(target) == {"v": 1}
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o444
    assert temp_files(shared) == []


def test_a_name_of_the_longest_legal_length_can_be_dumped_to(tmp_path):
    # The temporary name is the target's plus 18 characters: shortened to fit.
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    path = tmp_path / ("m" * (limit - 4) + ".pkl")
    ap.dump({"a": np.arange(10)}, path)
    np.testing.assert_array_equal(ap.load(path)["a"], np.arange(10))
    ap.dump([2], path)  # and over an existing file
    assert ap.load(path) == [2] and temp_files(tmp_path) == []


def _no_new_hidden_files(monkeypatch):
    real_open = os.open

    def no_new_files(name, flags, *args):
        if flags & os.O_CREAT and os.path.basename(name).startswith("."):
            raise PermissionError(13, "Permission denied", name)
        return real_open(name, flags, *args)

    monkeypatch.setattr(_atomic.os, "open", no_new_files)

    def no_new_file_objects(name, mode="r", *args, **kwargs):
        if "x" in mode and os.path.basename(name).startswith("."):
            raise PermissionError(13, "Permission denied", name)
        return open(name, mode, *args, **kwargs)

    monkeypatch.setattr(_atomic, "open", no_new_file_objects, raising=False)


def test_a_failed_dump_in_a_read_only_directory_leaves_the_file_intact(tmp_path, monkeypatch):
    # No file can be made beside the target (a read-only directory; as root a chmod
    # would not stop us, so the refusal is simulated): the dump is spooled elsewhere and
    # copied over the file only once complete.
    path = tmp_path / "model.pkl"
    ap.dump({"a": np.arange(1000)}, path)
    _no_new_hidden_files(monkeypatch)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        ap.dump({"a": np.arange(100_000), "b": Boom()}, path)
    np.testing.assert_array_equal(ap.load(path)["a"], np.arange(1000))  # untouched
    ap.dump({"a": np.arange(5)}, path, compress="gzip")
    np.testing.assert_array_equal(ap.load(path)["a"], np.arange(5))
    assert temp_files(tmp_path) == []


def test_ctrl_c_as_the_temporary_file_is_made_leaves_nothing(tmp_path, monkeypatch):
    # A signal arriving while the file is created is raised as the call returns: the
    # temporary file stayed, and its bare descriptor leaked (about a quarter of the
    # Ctrl-Cs landing in a small dump did so). Now the descriptor is a file object's,
    # closed when the interpreter drops it, and the file is removed.
    path = tmp_path / "model.pkl"
    ap.dump([1], path)

    def made_then_interrupted(name, mode="r", *args, **kwargs):
        made = open(name, mode, *args, **kwargs)  # noqa: SIM115 - closed by the test
        leaked.append(made)
        raise KeyboardInterrupt

    leaked = []
    monkeypatch.setattr(_atomic, "open", made_then_interrupted, raising=False)
    with pytest.raises(KeyboardInterrupt):
        ap.dump({"a": np.arange(10)}, path)
    leaked.pop().close()  # what the interpreter does with the object it drops
    monkeypatch.undo()
    assert temp_files(tmp_path) == [] and ap.load(path) == [1]


def test_a_new_file_in_a_read_only_directory_fails_at_once_naming_it(tmp_path, monkeypatch):
    _no_new_hidden_files(monkeypatch)
    spooled = []
    monkeypatch.setattr(_atomic.tempfile, "TemporaryFile", lambda: spooled.append(1))
    with pytest.raises(PermissionError) as info:  # as joblib and open() raise
        ap.dump({"a": np.arange(10)}, tmp_path / "new.pkl")
    assert info.value.filename == str(tmp_path / "new.pkl") and spooled == []


def test_without_a_usable_temporary_directory_the_dump_writes_in_place(tmp_path, monkeypatch):
    path = tmp_path / "model.pkl"
    ap.dump([1], path)
    _no_new_hidden_files(monkeypatch)

    def unusable():
        raise PermissionError(13, "Permission denied", "/tmp")

    monkeypatch.setattr(_atomic.tempfile, "TemporaryFile", unusable)
    ap.dump({"a": np.arange(5)}, path, fsync=True)
    np.testing.assert_array_equal(ap.load(path)["a"], np.arange(5))


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX users")
def test_a_writable_file_of_another_user_in_a_sticky_directory_is_written(shared_dir):
    # A team's shared cache (mode 1777 or 1775): the sticky bit forbids renaming over a
    # file another user owns, which its permission bits let us write (as joblib did).
    os.chmod(shared_dir, 0o1777)
    target = shared_dir / "model.pkl"
    ap.dump({"a": np.arange(3)}, target)
    os.chmod(target, 0o666)
    owner = os.stat(target).st_uid
    ap.dumps(0, compress="gzip")  # lazy imports done, as the unprivileged user could not
    with unprivileged():
        if os.stat(target).st_uid == os.geteuid():
            pytest.skip("cannot write as another user than the file's owner")
        ap.dump({"a": np.arange(7)}, target, compress="gzip", fsync=True)
    np.testing.assert_array_equal(ap.load(target)["a"], np.arange(7))
    st = os.stat(target)
    assert st.st_uid == owner and stat.S_IMODE(st.st_mode) == 0o666
    assert temp_files(shared_dir) == []


def _refused_rename(monkeypatch, before=lambda dst: None):
    """os.replace refused as a sticky directory refuses it, after ``before(dst)``."""

    def refuse(src, dst):
        before(dst)
        raise PermissionError(errno.EPERM, "Operation not permitted", dst)

    monkeypatch.setattr(_atomic.os, "replace", refuse)


def test_a_refused_rename_outside_a_sticky_directory_fails_and_leaves_the_file(
    tmp_path, monkeypatch
):
    # Writing in place is for the sticky case alone: elsewhere (a Windows sharing
    # violation, say) the file may be open in another process, and stays as it was.
    path = tmp_path / "model.pkl"
    ap.dump([1], path)
    _refused_rename(monkeypatch)
    with pytest.raises(PermissionError) as info:
        ap.dump([2], path)
    assert info.value.filename == str(path)
    monkeypatch.undo()
    assert ap.load(path) == [1] and temp_files(tmp_path) == []


@pytest.fixture
def others_file(shared_dir):
    """A file another user (nobody) owns, writable by all, in a sticky directory."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("making a file another user owns needs root")
    os.chmod(shared_dir, 0o1777)
    path = shared_dir / "model.pkl"
    ap.dump([1], path)
    os.chmod(path, 0o666)
    os.chown(path, 65534, 65534)
    return path


@pytest.mark.parametrize("swap", ["symlink", "new file"])
def test_a_file_swapped_during_the_dump_is_not_written_in_place(others_file, monkeypatch, swap):
    # Written in place, the file is opened again by its resolved name: a symlink or
    # another file there now was put there since (in a shared directory, by another
    # user), and must not receive the dump, nor the file a link points at.
    victim = others_file.parent / "victim"
    victim.write_bytes(b"precious")

    def replace_it(dst):
        theirs = dst + ".theirs"  # made before the old one goes: another inode
        if swap == "symlink":
            os.symlink(victim, theirs)
        else:
            with open(theirs, "wb") as f:
                f.write(b"theirs")
            os.chown(theirs, 65534, 65534)
        os.rename(theirs, dst)

    _refused_rename(monkeypatch, replace_it)
    with pytest.raises(OSError) as info:
        ap.dump([2], others_file)
    assert info.value.filename == str(others_file)
    assert victim.read_bytes() == b"precious" and temp_files(others_file.parent) == []
    if swap == "new file":
        assert others_file.read_bytes() == b"theirs"


def test_a_symlink_another_user_planted_in_a_sticky_directory_is_not_followed(others_file):
    # Linux's protected_symlinks refuses open() to follow it; resolving it ourselves to
    # rename over its target must refuse it too, or the dump lands on any file we may
    # write (a 1775 team cache is not even covered by the kernel's rule).
    victim = others_file.parent / "victim"
    victim.write_bytes(b"precious")
    link = others_file.parent / "planted.pkl"
    os.symlink(victim, link)
    os.lchown(link, 65534, 65534)
    with pytest.raises(PermissionError, match="symlink another user owns") as info:
        ap.dump([2], link)
    assert info.value.filename == str(link) and victim.read_bytes() == b"precious"
    os.lchown(link, 0, 0)  # one of ours is followed, as before
    ap.dump([3], link)
    assert ap.load(victim) == [3]
