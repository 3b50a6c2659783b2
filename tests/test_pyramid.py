"""The pyramidal listener: each layer joins neighbouring frames, halving the length (``nn/pyramid.py``)."""

from __future__ import annotations

import pytest
import torch

from rnnkit.nn import Pyramid
from rnnkit.nn.pyramid import pair_frames


def expected_length(n: int, layers: int, odd: str) -> int:
    for _ in range(layers):
        n = (n + 1) // 2 if odd == "pad" else max(1, n // 2)
    return n


@pytest.mark.parametrize("odd", ["pad", "drop"])
@pytest.mark.parametrize("steps", [1, 2, 7, 8, 13, 33])
def test_pyramid_shapes_and_lengths(odd, steps):
    pyramid = Pyramid(5, 4, num_pyramid=3, odd=odd).eval()
    lengths = torch.tensor([steps, max(1, steps - 3), 1])
    out, found = pyramid(torch.randn(3, steps, 5), lengths)
    assert out.shape == (3, expected_length(steps, 3, "pad"), 8)  # the tensor is always ceil'd
    assert found.tolist() == [expected_length(int(n), 3, odd) for n in lengths]
    for i, n in enumerate(found.tolist()):
        assert torch.all(out[i, n:] == 0)  # nothing past a sequence's end
    assert pyramid.reduction == 8 and pyramid.output_lengths(lengths).tolist() == found.tolist()


def test_pairing_joins_neighbours_and_pads_or_drops_odd_ends():
    x = torch.arange(1, 6, dtype=torch.float32).reshape(1, 5, 1)  # frames 1..5
    padded, n = pair_frames(x, torch.tensor([5]), "pad")
    assert padded[0].tolist() == [[1, 2], [3, 4], [5, 0]] and n.tolist() == [3]
    dropped, n = pair_frames(x, torch.tensor([5]), "drop")
    assert dropped[0, :2].tolist() == [[1, 2], [3, 4]] and n.tolist() == [2]
    assert torch.all(dropped[0, 2] == 0)


@pytest.mark.parametrize(("cell", "odd"), [("lstm", "pad"), ("gru", "drop"), ("lstm", "drop")])
def test_padding_never_changes_what_the_pyramid_says(cell, odd):
    torch.manual_seed(0)
    pyramid = Pyramid(6, 5, num_pyramid=2, cell=cell, odd=odd).eval()
    lengths = torch.tensor([19, 6, 11, 1])
    batch = torch.randn(4, 19, 6)
    together, found = pyramid(batch, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone, m = pyramid(batch[i : i + 1, :n], torch.tensor([n]))
        assert m.item() == found[i].item()
        torch.testing.assert_close(together[i, : m.item()], alone[0, : m.item()], atol=1e-6, rtol=1e-5)


def test_without_joining_the_same_stack_keeps_every_frame():
    flat = Pyramid(3, 4, num_pyramid=2, join=False)
    out, found = flat(torch.randn(2, 9, 3), torch.tensor([9, 4]))
    assert out.shape == (2, 9, 8) and found.tolist() == [9, 4] and flat.reduction == 1
    assert len(flat.layers) == 2 and flat.layers[0].input_size == 8  # frame by frame: 2H in
    assert Pyramid(3, 4, num_pyramid=2).layers[0].input_size == 16  # joined pairs: 4H in
    assert Pyramid(3, 4, num_pyramid=0).reduction == 1
