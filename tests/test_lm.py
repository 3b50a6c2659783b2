"""The character language-model task (``tasks/lm``): its model and loss, apart from the engine."""

from __future__ import annotations

import torch
from tests.helpers import tiny_config, tiny_corpus

from rnnkit.tasks.lm import LMTask, build_model


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
