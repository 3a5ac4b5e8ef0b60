"""The benchmark cases: the objects users save, built the same way in every process.

Each case builds its object from a fixed seed, at full size or (``quick``) tiny. A case
that is slow to build (the fitted forest) is built once by the harness and cached as a
pickle that every measuring process loads, so all libraries see the same object.
"""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# The face bunch mirrors sklearn.datasets.fetch_lfw_people(resize=0.5, min_faces_per_person=0):
# 13,233 images of 62 x 47 pixels, 5,749 people. sklearn's bunch holds the images twice
# (``data`` is a reshaped view of ``images``) and pickle writes both: 2 x 154.3 MB.
FACES = 13_233
FACE_SHAPE = (62, 47)
PEOPLE = 5_749

# Many small arrays: MNIST-shaped float32 images, 3 KiB each.
SMALL_IMAGES = 20_000
SMALL_IMAGE_SHAPE = (28, 28)

FOREST_SAMPLES = 20_000
FOREST_FEATURES = 20
FOREST_TREES = 100


@dataclass(frozen=True)
class Case:
    """One object to persist."""

    name: str
    title: str
    description: str
    build: Callable[[bool], Any]
    arrays: bool  # the data are mostly large arrays: memory-map targets apply
    cached: bool = False  # build once per run (slow), load from a pickle in each process
    needs: tuple[str, ...] = ()  # importable modules the case needs


def face_bunch(quick: bool) -> dict[str, Any]:
    """A face-dataset-shaped bunch: float32 images of 8-bit pixels / 255, targets, names."""
    n = 200 if quick else FACES
    rng = np.random.default_rng(0)
    images = np.empty((n, *FACE_SHAPE), dtype=np.float32)
    for start in range(0, n, 1000):  # in slices, so building stays within ~100 MB extra
        stop = min(n, start + 1000)
        images[start:stop] = _smooth_pixels(rng, stop - start) / np.float32(255.0)
    return {
        "data": images.reshape(n, -1),  # a view, as in sklearn's bunch
        "images": images,
        "target": rng.integers(0, PEOPLE, size=n, dtype=np.int64),
        "target_names": np.array([f"Person_{i:04d}" for i in range(PEOPLE)]),
        "DESCR": "Synthetic stand-in for Labeled Faces in the Wild (resize=0.5). " * 20,
    }


def _smooth_pixels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Photo-like 8-bit images: a coarse random field blown up and blurred, plus noise.

    Plain uniform noise would not compress at all, unlike real faces; a blurred field
    with a little noise compresses about as well as photographs do.
    """
    h, w = FACE_SHAPE
    block = 8
    coarse = rng.integers(0, 256, size=(n, h // block + 2, w // block + 2), dtype=np.int32)
    big = coarse.repeat(block, axis=1).repeat(block, axis=2)
    # a box blur of width ``block`` along each axis, by differences of cumulative sums
    c = np.cumsum(big, axis=1)
    big = c[:, block:] - c[:, :-block]
    c = np.cumsum(big, axis=2)
    big = (c[:, :, block:] - c[:, :, :-block]) // (block * block)
    pixels = big[:, :h, :w] + rng.integers(-3, 4, size=(n, h, w), dtype=np.int32)
    return np.clip(pixels, 0, 255).astype(np.float32)


def seed_example(quick: bool) -> list[np.ndarray]:
    """The seed example: ``[np.ones((5000, 5000)), np.random.random((5000, 5000))]``."""
    side = 200 if quick else 5000
    np.random.seed(0)
    return [np.ones((side, side)), np.random.random((side, side))]


def float_dict(quick: bool) -> dict[float, float]:
    """A dict of random float keys to random floats (Python floats)."""
    n = 10_000 if quick else 1_000_000
    r = random.Random(0)
    return {r.random(): r.random() for _ in range(n)}


def small_images(quick: bool) -> list[np.ndarray]:
    """A list of small float32 images, each an array of its own (not views of one)."""
    n = 500 if quick else SMALL_IMAGES
    rng = np.random.default_rng(0)
    return [rng.random(SMALL_IMAGE_SHAPE, dtype=np.float32) for _ in range(n)]


def random_forest(quick: bool) -> Any:
    """A fitted ``RandomForestClassifier`` with 100 trees (about 30 MB pickled)."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    samples, trees = (500, 10) if quick else (FOREST_SAMPLES, FOREST_TREES)
    x, y = make_classification(
        n_samples=samples,
        n_features=FOREST_FEATURES,
        n_informative=10,
        flip_y=0.1,  # label noise keeps the trees deep: tens of MB of nodes
        random_state=0,
    )
    return RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=-1).fit(x, y)


CASES = {
    c.name: c
    for c in (
        Case(
            "faces",
            "Face bunch",
            f"{FACES:,} float32 images {FACE_SHAPE[0]}x{FACE_SHAPE[1]} (8-bit pixels / 255) "
            "stored as `images` and as the reshaped view `data`, int64 targets, "
            f"{PEOPLE:,} names: 308.9 MB in pickle",
            face_bunch,
            arrays=True,
        ),
        Case(
            "seed",
            "Seed example",
            "`[np.ones((5000, 5000)), np.random.random((5000, 5000))]`: 400 MB of float64",
            seed_example,
            arrays=True,
        ),
        Case(
            "dict",
            "Dict of floats",
            "1,000,000 random float keys to random floats (Python objects, no arrays)",
            float_dict,
            arrays=False,
        ),
        Case(
            "images",
            "Small images",
            f"a list of {SMALL_IMAGES:,} float32 arrays of {SMALL_IMAGE_SHAPE[0]}x"
            f"{SMALL_IMAGE_SHAPE[1]} (3 KiB each, 62.7 MB): many small arrays",
            small_images,
            arrays=False,
        ),
        Case(
            "forest",
            "Random forest",
            f"scikit-learn `RandomForestClassifier(n_estimators={FOREST_TREES})` fitted on "
            f"`make_classification(n_samples={FOREST_SAMPLES:,}, n_features={FOREST_FEATURES}, "
            "n_informative=10, flip_y=0.1)`: about 30 MB in pickle",
            random_forest,
            arrays=False,
            cached=True,
            needs=("sklearn",),
        ),
    )
}


def cache_path(case: Case, quick: bool, cache_dir: str) -> str:
    """Where the harness keeps a cached case (keyed by the versions that shape it)."""
    import importlib.metadata as md

    versions = "-".join(md.version(dist) for dist in ("scikit-learn", "numpy"))
    size = "quick" if quick else "full"
    return os.path.join(cache_dir, f"{case.name}-{size}-{versions}.pkl")


def prepare(case: Case, quick: bool, cache_dir: str) -> str | None:
    """Build a cached case unless its cache exists; return the cache path (None: not cached)."""
    if not case.cached:
        return None
    path = cache_path(case, quick, cache_dir)
    if not os.path.exists(path):
        os.makedirs(cache_dir, exist_ok=True)
        obj = case.build(quick)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=5)
        os.replace(tmp, path)
    return path


def load_case(case: Case, quick: bool, cache_dir: str) -> Any:
    """The case's object, from its cache when it has one."""
    if not case.cached:
        return case.build(quick)
    with open(prepare(case, quick, cache_dir), "rb") as f:  # type: ignore[arg-type]
        return pickle.load(f)
