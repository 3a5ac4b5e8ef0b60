"""Shared fixtures for the core test suite."""

from __future__ import annotations

import importlib.util
import os
import pathlib
from typing import Any

import pytest
from hypothesis import settings

import arraypickle
from arraypickle import _plugins
from fakedist import distribution  # noqa: F401  (a fixture, for every test module)

HERE = pathlib.Path(__file__).parent
DATA = HERE / "data"
# Files written by real joblib versions, kept beside the project (never copied in).
JOBLIB_COMPAT = HERE.parent.parent / "shared" / "joblib-compat"

STDLIB_CODECS = ("zlib", "gzip", "bz2", "lzma", "xz")

# Property tests draw the same examples on every run by default (the README's command,
# CI), so that main cannot turn red for an example a new random seed happened to find;
# no deadlines, since a noisy 2-core VM stalls for hundreds of milliseconds.
# HYPOTHESIS_PROFILE=explore searches instead: fresh seeds, 1,000 examples where a test
# does not set its own count, and failures kept in .hypothesis/ and replayed first where
# a test keeps the database. What it finds becomes an @example.
settings.register_profile("repeatable", derandomize=True, deadline=None, print_blob=True)
settings.register_profile(
    "explore", max_examples=1000, deadline=None, print_blob=True, derandomize=False
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def load_script(path: pathlib.Path) -> Any:
    """The module a data-making script under tests/data is (its functions describe
    the files it wrote), loaded from its path."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def installed_codecs() -> list[str]:
    return sorted(arraypickle.codecs())


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry rebuilt from scratch for this test, and rebuilt again after it."""
    _plugins.reset()
    yield
    _plugins.reset()


@pytest.fixture
def tmp_path_str(tmp_path) -> str:
    return os.fspath(tmp_path)


# Every installed codec (plugins included) and no compression: what round trips cover.
COMPRESS_SETTINGS = [0, *installed_codecs()]
