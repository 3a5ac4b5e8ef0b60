"""Globals that pickles name and arraypickle treats specially, each spelled out once.

joblib's array wrappers are named under joblib and under the copy scikit-learn once
vendored (``sklearn.externals.joblib``); numpy's scalar constructor under numpy 1's
``numpy.core`` and numpy 2's ``numpy._core``. The loader, the safe scan and ``info``
all recognise them by these names.
"""

from __future__ import annotations

JOBLIB_PACKAGES = ("joblib", "sklearn.externals.joblib")
_LEGACY_MODULES = tuple(
    f"{p}.{m}" for p in JOBLIB_PACKAGES for m in ("numpy_pickle", "numpy_pickle_compat")
)
#: joblib's wrapper classes, each with the modules that defined it.
JOBLIB_WRAPPER_MODULES = {
    "NumpyArrayWrapper": tuple(f"{p}.numpy_pickle" for p in JOBLIB_PACKAGES),
    "NDArrayWrapper": _LEGACY_MODULES,
    "ZNDArrayWrapper": _LEGACY_MODULES,
}
#: joblib 0.10 and later: the array's bytes follow the wrapper's BUILD in the stream.
JOBLIB_NUMPY_WRAPPERS = frozenset(
    f"{m}.NumpyArrayWrapper" for m in JOBLIB_WRAPPER_MODULES["NumpyArrayWrapper"]
)
#: joblib 0.8 and 0.9: the array is in a companion file, or in the wrapper's zlib data.
JOBLIB_LEGACY_WRAPPERS = frozenset(
    f"{m}.{cls}" for cls in ("NDArrayWrapper", "ZNDArrayWrapper") for m in _LEGACY_MODULES
)
#: How numpy pickles a scalar (``np.float64(1.0)``): a call of this with dtype and bytes.
NUMPY_SCALARS = frozenset(f"{m}.multiarray.scalar" for m in ("numpy.core", "numpy._core"))
#: The name a walk reports for a global it cannot name: one built from computed strings,
#: an unregistered extension code, a name too long. No allow-list holds it.
UNRESOLVED = "<unresolved>"
