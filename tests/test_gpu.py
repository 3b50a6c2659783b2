"""Checks that need a CUDA device: cuDNN's fused kernels equal the unrolled loop and torch's modules.

Skipped on machines without a GPU (CI has none); run them where one is present with
``python -m pytest -m gpu``.
"""

import itertools
import warnings

import pytest
import torch

from rnnkit.nn import Recurrent
from rnnkit.tasks.lm import CharLM, ModelConfig

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
TORCH = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def parts(state):
    return tuple(state) if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize(
    ("cell", "layers", "bidir"), list(itertools.product(["rnn", "lstm", "gru"], [1, 3], [False, True]))
)
def test_cudnn_fused_equals_unrolled_and_torch(cell, layers, bidir):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    fused = Recurrent(8, 16, cell=cell, num_layers=layers, bidirectional=bidir).cuda()
    unrolled = Recurrent(8, 16, cell=cell, num_layers=layers, bidirectional=bidir, backend="unrolled").cuda()
    unrolled.load_state_dict(fused.state_dict())
    twin = TORCH[cell](8, 16, num_layers=layers, bidirectional=bidir, batch_first=True).cuda()
    twin.load_state_dict(fused.state_dict())
    x = torch.randn(5, 12, 8, device="cuda")
    lengths = torch.tensor([12, 3, 7, 1, 12])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "weights are not part of single contiguous chunk"
        out_f, h_f = fused(x, lengths)
    out_u, h_u = unrolled(x, lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_t, h_t = twin(packed)
    out_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_t, batch_first=True, total_length=12)
    torch.testing.assert_close(out_f, out_u, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out_f, out_t, atol=1e-5, rtol=1e-4)
    for a, b, c in zip(parts(h_f), parts(h_u), parts(h_t), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-4)


def test_bf16_autocast_agrees_with_fp32_on_gpu():
    torch.manual_seed(0)
    model = CharLM(65, ModelConfig(embedding_size=32, hidden_size=128, num_layers=2)).cuda()
    ids = torch.randint(0, 65, (8, 64), device="cuda")
    targets = torch.randint(0, 65, (8, 64), device="cuda")
    logits, _ = model(ids)
    fp32 = torch.nn.functional.cross_entropy(logits.reshape(-1, 65), targets.reshape(-1))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, _ = model(ids)
    bf16 = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 65), targets.reshape(-1))
    assert abs(fp32.item() - bf16.item()) < 0.02
