"""The character language-model task (``tasks/lm``): its model and loss, apart from the engine."""

from __future__ import annotations

import pytest
import torch
from tests.helpers import tiny_config, tiny_corpus

from rnnkit.tasks.lm import LMTask, build_model
from rnnkit.tasks.lm.config import ModelConfig
from rnnkit.tasks.lm.model import CharLM


def test_overfits_one_tiny_batch(tmp_path):
    corpus = tiny_corpus(tmp_path, chars=2_000)
    config = tiny_config(tmp_path, max_steps=300, lr=1e-2, warmup_steps=0, batch_size=4, seq_len=16)
    config.model.hidden_size = 64
    torch.manual_seed(0)
    model = build_model(config, len(corpus.vocab))
    task = LMTask(config, corpus)
    batch = task.batcher.batch(0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(300):
        loss, _, _ = task.training_loss(model, batch, None)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


# the regularisers of AWD-LSTM that the budget rule turns on


def lm(**model) -> CharLM:
    torch.manual_seed(0)
    return CharLM(65, ModelConfig(embedding_size=8, hidden_size=16, num_layers=2, **model))


def test_locked_dropout_draws_one_mask_per_sequence():
    model = lm(dropout=0.5, locked_dropout=True).train()
    out = model._drop(torch.ones(3, 20, 8))
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same mask at every step
    assert (out == 0).any() and not torch.equal(out[0], out[1])  # ... but one per sequence
    step = lm(dropout=0.5).train()._drop(torch.ones(3, 20, 8))
    assert not torch.equal(step, step[:, :1].expand_as(step))  # without it, a new mask at every step


def test_weight_drop_zeroes_recurrent_weights_in_training_only_and_trains_them():
    model = lm(weight_drop=0.5)
    ids = torch.randint(0, 65, (2, 12))
    plain = lm()  # the same weights (same seed), no weight drop
    model.eval()
    assert torch.equal(model(ids)[0], plain.eval()(ids)[0])  # eval: the full matrices
    model.train()
    first, second = model(ids)[0], model(ids)[0]
    assert not torch.equal(first, second)  # a new mask per call
    assert not torch.allclose(first, plain.train()(ids)[0])
    first.sum().backward()
    grads = [model.rnn.weight_hh_l0.grad, model.rnn.weight_hh_l1.grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all((g == 0).float().mean() > 0.2 for g in grads if g is not None)  # the dropped entries get none


def test_weight_drop_is_a_probability():
    with pytest.raises(ValueError, match="weight_drop"):
        ModelConfig(weight_drop=1.0)
