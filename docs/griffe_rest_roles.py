"""A griffe extension for the API reference: Sphinx roles in docstrings as code.

The docstrings name objects the Sphinx way (``:class:`CorruptFileError```,
``:mod:`arraypickle.codec```), which Markdown would show verbatim; this turns each
role into inline code before mkdocstrings renders the page.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


class RestRoles(griffe.Extension):
    """Replace ``:role:`target``` by ```target``` in every docstring."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None and ":" in docstring.value:
            docstring.value = _ROLE.sub(r"`\1`", docstring.value)
