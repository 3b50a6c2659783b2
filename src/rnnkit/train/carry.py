"""The state a truncated-BPTT task carries from batch to batch: cut from the graph at each boundary,
and flattened into named tensors for a checkpoint."""

from __future__ import annotations

from typing import Any

from torch import Tensor


def detach(carry: Any) -> Any:
    """Cut the graph at a truncated-BPTT boundary, keeping the values (tensors, tuples, None)."""
    if carry is None:
        return None
    if isinstance(carry, Tensor):
        return carry.detach()
    if isinstance(carry, tuple):
        items = [detach(c) for c in carry]
        return type(carry)(*items) if hasattr(carry, "_fields") else tuple(items)
    if isinstance(carry, list):
        return [detach(c) for c in carry]
    raise TypeError(f"carry: cannot detach a {type(carry).__name__}")


def flatten_carry(carry: Any) -> dict[str, Tensor]:
    if carry is None:
        return {}
    parts = (carry,) if isinstance(carry, Tensor) else tuple(carry)
    return {f"carry.{i}": part for i, part in enumerate(parts)}
