"""Fake plugin distributions on disk, found through real entry-point metadata."""

from __future__ import annotations

import pathlib
import textwrap


def make_distribution(root: pathlib.Path, dist: str, plugin: str, source: str) -> pathlib.Path:
    """Write a module and a ``.dist-info`` announcing it in the ``arraypickle`` group.

    Putting ``root`` on ``sys.path`` (or ``PYTHONPATH``) installs the distribution as far
    as ``importlib.metadata`` is concerned: arraypickle finds it as it finds any plugin.
    """
    module = f"{dist.replace('-', '_')}_hooks"
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[arraypickle]\n{plugin} = {module}\n")
    return root


BROKEN = """
    raise ImportError("the fake library this plugin needs is missing")
"""

WORKING = """
    import io
    from arraypickle import hookimpl
    from arraypickle.codec import Codec


    class Writer(io.RawIOBase):  # stores the data as it is, after the magic
        def __init__(self, fileobj):
            super().__init__()
            self._f = fileobj
            fileobj.write(b"FAKE")

        def writable(self):
            return True

        def write(self, data):
            self._f.write(data)
            return len(data)


    class Reader(io.RawIOBase):
        def __init__(self, fileobj):
            super().__init__()
            self._f = fileobj
            fileobj.read(4)

        def readable(self):
            return True

        def readinto(self, b):
            return self._f.readinto(b)


    class FakeCodec(Codec):
        name, magic, extensions = "fake", b"FAKE", (".fake",)
        distribution = "arraypickle-fake"

        def open_writer(self, fileobj, level):
            return Writer(fileobj)

        def open_reader(self, fileobj):
            return Reader(fileobj)


    @hookimpl
    def arraypickle_register_codecs():
        return [FakeCodec()]
"""
