"""The fast generation path: the same logits as the plain path, and exactly the same sampled tokens."""

import pytest
import torch

from rnnkit.generate import SamplingConfig, beam_search, sample
from rnnkit.nn import LSTMState, Stepper
from rnnkit.tasks.lm import CharLM, ModelConfig

V = 37


def model(cell: str, layers: int, seed: int = 0) -> CharLM:
    torch.manual_seed(seed)
    m = CharLM(V, ModelConfig(cell=cell, hidden_size=48, num_layers=layers, embedding_size=16))
    with torch.no_grad():  # a trained model is sharper than a fresh one; make the logits spread out
        m.head.weight.mul_(8)
    return m.eval()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 3])
def test_stepper_equals_the_plain_forward_pass(cell, layers):
    m = model(cell, layers)
    ids = torch.randint(V, (5, 30))
    with torch.no_grad():
        expected, final = m(ids)
        stepper, state = Stepper(m.embedding, m.rnn, m.head), None
        for t in range(ids.shape[1]):
            logits, state = stepper.step(ids[:, t], state)
            torch.testing.assert_close(logits, expected[:, t], rtol=1e-5, atol=1e-5)
    if cell == "lstm":
        assert isinstance(state, LSTMState)
        torch.testing.assert_close(state.c, final.c, rtol=1e-5, atol=1e-5)
        state, final = state.h, final.h
    torch.testing.assert_close(state, final, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("streams", [1, 4])
def test_fast_sampling_yields_exactly_the_plain_tokens(cell, streams, monkeypatch):
    m = model(cell, 2)
    config = SamplingConfig(temperature=1.0, top_k=20, top_p=0.95)

    def run():
        return torch.stack(list(sample(m, [1, 2, 3], 300, config, num_samples=streams, seed=11)))

    fast = run()
    real_step = CharLM.step
    monkeypatch.setattr(CharLM, "step", lambda self, ids, state=None: real_step(self, ids, state, fast=False))
    plain = run()
    assert torch.equal(fast, plain)
    assert len(set(fast[:, 0].tolist())) > 10  # it really sampled, not a constant


def test_beam_search_takes_the_same_path_and_result(monkeypatch):
    m = model("lstm", 2)
    fast = beam_search(m, [4, 5], 40, 4)
    real_step = CharLM.step
    monkeypatch.setattr(CharLM, "step", lambda self, ids, state=None: real_step(self, ids, state, fast=False))
    assert beam_search(m, [4, 5], 40, 4) == fast


def test_stepper_is_rebuilt_when_the_weights_change():
    m = model("lstm", 1)
    ids = torch.tensor([3, 4])
    with torch.no_grad():
        before, _ = m.step(ids)
        m.head.bias.add_(1.0)  # in place, as an optimizer step does
        after, _ = m.step(ids)
        plain, _ = m.step(ids, fast=False)
    torch.testing.assert_close(after, before + 1.0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(after, plain, rtol=1e-5, atol=1e-5)


def test_training_mode_and_gradients_take_the_plain_path():
    m = model("lstm", 1).train()
    logits, _ = m.step(torch.tensor([1, 2]))
    assert logits.requires_grad  # the plain path, so training can backpropagate through it
    assert "_stepper" not in m.__dict__
    with pytest.raises(ValueError, match="unidirectional"):
        from rnnkit.nn import Recurrent

        Stepper(m.embedding, Recurrent(16, 8, bidirectional=True), m.head)


def spy_on(cell_class, name: str, monkeypatch) -> list[tuple]:
    """Replace the static method ``name`` of ``cell_class`` by one that records each call's arguments
    (in the list returned) and then does what it did."""
    real, calls = getattr(cell_class, name), []

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(cell_class, name, staticmethod(spy))
    return calls


@pytest.mark.parametrize(
    ("cell", "in_place", "update"),
    [("lstm", False, "update"), ("gru", False, "update"), ("rnn", False, "update"),
     ("lstm", True, "update_doubled_")],
)  # fmt: skip
def test_stepper_takes_its_gate_equations_from_the_cell(cell, in_place, update, monkeypatch):
    """The gates are written once, in the cells: the stepper computes the pre-activations its own fast way
    and hands them to the cell's ``update`` (the in-place form, the narrow LSTM's: ``update_doubled_``),
    one call per layer, from ``step`` and from a :class:`rnnkit.nn.Stream`; and it computes the
    model's function."""
    from rnnkit.nn import CELLS

    m = model(cell, 3)
    stepper = Stepper(m.embedding, m.rnn, m.head, in_place=in_place)
    calls = spy_on(CELLS[cell], update, monkeypatch)
    ids = torch.tensor([1, 2, 3])
    logits, _ = stepper.step(ids)
    assert len(calls) == 3
    with torch.no_grad():
        expected, _ = m(ids[:, None])
    torch.testing.assert_close(logits, expected[:, 0], rtol=1e-5, atol=1e-5)
    calls.clear()
    torch.testing.assert_close(stepper.stream(None, 3).advance(ids), expected[:, 0], rtol=1e-5, atol=1e-5)
    assert len(calls) == 3
