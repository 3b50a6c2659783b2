"""The check at the door of every loaded-model method that takes a list of inputs.

A text, a file's path or a file's content given alone, where a list of them is expected, would be
iterated as characters or bytes and answered item by item, silently wrong (``tag(["john went"])``
tags the letters; ``caption(b"...")`` reads each byte as a picture). :func:`a_list` refuses it in one
line that names the method.
"""

from __future__ import annotations

import os
from typing import TypeVar

from rnnkit.errors import UsageError

T = TypeVar("T")

SINGLE = (str, bytes, bytearray, memoryview, os.PathLike)
"""Values that are one input, never a list of them."""


def a_list(items: T, method: str, what: str) -> T:
    """``items`` when it is a list (or another sequence) of inputs; a :class:`UsageError` naming
    ``method`` when it is one input (a text, bytes or a path), e.g. ``tag: expected a list of
    sentences, got one str; pass a list (tag([x]))``."""
    if isinstance(items, SINGLE):
        raise UsageError(
            f"{method}: expected a list of {what}, got one {type(items).__name__}; "
            f"pass a list ({method}([x]))"
        )
    return items
