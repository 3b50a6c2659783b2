import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.batching import StreamBatcher


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 400), st.integers(1, 8), st.integers(1, 20))
def test_every_token_is_a_target_exactly_once_per_epoch(n, batch, steps):
    tokens = np.arange(n)
    batcher = StreamBatcher(tokens, batch, steps)
    if batcher.row_len == 0:
        assert batcher.batches_per_epoch == 0
        return
    targets, inputs = [], []
    for x, y in batcher:
        assert x.shape == y.shape and x.shape[0] == batch and 1 <= x.shape[1] <= steps
        assert torch.equal(x[:, 1:], y[:, :-1])
        targets += y.flatten().tolist()
        inputs += x.flatten().tolist()
    covered = batch * batcher.row_len
    assert sorted(targets) == list(range(1, covered + 1))
    assert sorted(inputs) == list(range(covered))
    assert n - 1 - covered < batch  # at most batch - 1 tokens left out at the end


def test_rows_continue_across_batches():
    batcher = StreamBatcher(np.arange(101), 4, 5)
    (_x0, y0), (x1, _) = batcher.batch(0), batcher.batch(1)
    assert torch.equal(x1[:, 0], y0[:, -1])


def test_ranks_take_disjoint_rows():
    tokens = np.arange(1001)
    seen = []
    for rank in range(2):
        batcher = StreamBatcher(tokens, 3, 10, rank=rank, world_size=2)
        seen.append({t for _, y in batcher for t in y.flatten().tolist()})
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 6 * (1000 // 6)


def test_bad_index():
    with pytest.raises(IndexError):
        StreamBatcher(np.arange(50), 2, 5).batch(99)
