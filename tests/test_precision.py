"""bf16 autocast against fp32 on the CPU: the same model and data give validation losses within 0.02 nats.

This CPU may lack native bf16 kernels (then ``--precision auto`` picks fp32 and the trainer refuses
bf16), but autocast itself still runs, slowly, through the unrolled backend; the numbers must agree.
"""

import numpy as np
import torch
from tests.helpers import text_corpus, tiny_config

from rnnkit.tasks.lm import SPEC as LM
from rnnkit.tasks.lm import load_lm, score_tokens
from rnnkit.train.run import run
from rnnkit.train.trainer import autocast


def test_bf16_and_fp32_agree_on_a_trained_small_model(tmp_path):
    source = text_corpus(tmp_path / "t.txt", 30_000)
    config = tiny_config(source, max_steps=150, lr=1e-2, eval_interval=150)
    config.model.hidden_size = 64
    run(LM, config, tmp_path / "run")
    loaded = load_lm(tmp_path / "run", "last")
    model = loaded.model
    model.rnn.backend = "unrolled"  # oneDNN's fused LSTM has no bf16 kernel on every CPU
    tokens = np.memmap(tmp_path / "run" / "data" / "val.bin", dtype=loaded.vocab.dtype, mode="r")
    with torch.no_grad():
        fp32, count = score_tokens(model, tokens)
        with autocast(torch.device("cpu"), "bf16"):
            bf16, _ = score_tokens(model, tokens)
            logits, _ = model(torch.from_numpy(np.asarray(tokens[:64], dtype=np.int64))[None])
    assert logits.dtype == torch.bfloat16  # autocast really ran the matrix products in bf16
    fp32, bf16 = fp32 / count, bf16 / count
    assert fp32 < 2.5  # trained: well below log(vocab)
    assert abs(fp32 - bf16) < 0.02, (fp32, bf16)


def test_bf16_training_steps_follow_fp32(tmp_path):
    """Ten steps from the same start: the bf16 losses stay within 0.02 nats of the fp32 ones."""
    source = text_corpus(tmp_path / "t.txt", 20_000)
    losses = {}
    for precision in ("fp32", "bf16"):
        from rnnkit.data.corpus import encode_corpus, resolve_sources
        from rnnkit.tasks.lm import LMTask, build_model

        config = tiny_config(source, max_steps=10)
        corpus = encode_corpus(resolve_sources([str(source)]), tmp_path / precision, val_fraction=0.1)
        torch.manual_seed(0)
        model = build_model(config, len(corpus.vocab))
        model.rnn.backend = "unrolled"
        task = LMTask(config, corpus)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        carry, history = None, []
        for _ in range(10):
            batch, _ = task.next_batch()
            with autocast(torch.device("cpu"), precision):
                loss, carry, _ = task.training_loss(model, batch, carry)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            carry = tuple(part.detach() for part in carry)
            history.append(loss.item())
        losses[precision] = history
    assert losses["fp32"][-1] < losses["fp32"][0]
    assert max(abs(a - b) for a, b in zip(losses["fp32"], losses["bf16"], strict=True)) < 0.02
    assert losses["fp32"] != losses["bf16"]  # bf16 really changed the arithmetic
