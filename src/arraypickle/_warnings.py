"""Warnings attributed to the caller's line, however deep inside arraypickle they arise."""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` at the line that called into arraypickle.

    The stack level is that of the frame above the outermost arraypickle frame, so
    frames of the standard library in between (the import machinery) are passed.
    """
    frame = sys._getframe(1)
    level = outermost = 2
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
            outermost = level
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=outermost + 1)
