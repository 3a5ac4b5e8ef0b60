"""Dump to and load from the file objects users hand us, and paths of every kind."""

from __future__ import annotations

import bz2
import gzip
import lzma

import numpy as np
import pytest

import arraypickle as ap
from checks import assert_same


def sample() -> dict:
    a = np.arange(20000.0).reshape(200, 100)
    return {"a": a, "view": a[::3, 1::2], "F": np.asfortranarray(a[:10]), "text": "x" * 100}


# -- decompressing readers of the standard library --------------------------------


@pytest.mark.parametrize("opener", [gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile])
def test_load_from_a_decompressing_reader(tmp_path, opener):
    # Such readers answer fileno() with the descriptor of the compressed file: its
    # size must not be taken for the number of bytes they give.
    obj = sample()
    path = tmp_path / "obj.pkl.x"
    with opener(path, "wb") as f:
        assert ap.dump(obj, f) is None
    with opener(path, "rb") as f:
        assert_same(ap.load(f), obj)
