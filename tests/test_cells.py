import pytest
import torch

from rnnkit.nn import CELLS, GRUCell, LSTMCell, LSTMState, RNNCell, cell_class

TORCH_CELLS = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_matches_torch_cell(name):
    ours = CELLS[name](6, 5)
    theirs = TORCH_CELLS[name](6, 5)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 6)
    if name == "lstm":
        state = LSTMState(torch.randn(4, 5), torch.randn(4, 5))
        h, c = ours(x, state)
        th, tc = theirs(x, tuple(state))
        torch.testing.assert_close(h, th, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(c, tc, atol=1e-6, rtol=1e-5)
    else:
        state = torch.randn(4, 5)
        torch.testing.assert_close(ours(x, state), theirs(x, state), atol=1e-6, rtol=1e-5)


def test_relu_rnn_cell_matches_torch():
    ours = RNNCell(3, 4, nonlinearity="relu")
    theirs = torch.nn.RNNCell(3, 4, nonlinearity="relu")
    theirs.load_state_dict(ours.state_dict())
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    torch.testing.assert_close(ours(x, h), theirs(x, h))
    assert (ours(x, h) >= 0).all()


def test_vanilla_cell_is_the_tutorial_equation():
    cell = RNNCell(3, 4)
    x, s = torch.randn(2, 3), torch.randn(2, 4)
    U, W = cell.weight_ih, cell.weight_hh
    b = cell.bias_ih + cell.bias_hh
    expected = torch.tanh(x @ U.T + s @ W.T + b)
    torch.testing.assert_close(cell(x, s), expected)


@pytest.mark.parametrize("cls", [RNNCell, LSTMCell, GRUCell])
def test_gradcheck_float64(cls):
    cell = cls(3, 4).double()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    if cls is LSTMCell:
        c = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)

        def fn(x, h, c, *weights):
            return tuple(cell(x, LSTMState(h, c)))

        inputs = (x, h, c, *cell.parameters())
    else:

        def fn(x, h, *weights):
            return cell(x, h)

        inputs = (x, h, *cell.parameters())
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


def test_missing_state_means_zeros():
    cell = LSTMCell(3, 4)
    x = torch.randn(2, 3)
    h, c = cell(x)
    zeros = torch.zeros(2, 4)
    h0, c0 = cell(x, LSTMState(zeros, zeros))
    assert h.shape == (2, 4)
    torch.testing.assert_close(h, h0, rtol=0, atol=0)
    torch.testing.assert_close(c, c0, rtol=0, atol=0)


def test_unknown_cell_names_argument():
    with pytest.raises(ValueError, match="cell"):
        cell_class("transformer")


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_sizes(bad):
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMCell(3, bad)


def test_bad_input_rank():
    with pytest.raises(ValueError, match="input"):
        GRUCell(3, 4)(torch.randn(2, 5, 3))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_step_ends_in_update_which_leaves_its_inputs_alone(name, monkeypatch):
    """``update`` holds the gate equations that the cells, the unrolled backend and the stepper share; it
    writes nothing in place, so autograd can differentiate through it."""
    cell = CELLS[name](3, 4)
    state = LSTMState(torch.randn(2, 4), torch.randn(2, 4)) if name == "lstm" else torch.randn(2, 4)
    update, calls = CELLS[name].update, []

    def spy(*args):
        copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
        result = update(*args)
        for a, b in zip(args, copies, strict=True):
            assert not isinstance(a, torch.Tensor) or torch.equal(a, b)
        calls.append(args)
        return result

    monkeypatch.setattr(CELLS[name], "update", staticmethod(spy))
    x = torch.randn(2, 3, requires_grad=True)
    out = cell(x, state)
    assert len(calls) == 1
    (out.h if name == "lstm" else out).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_unrolled_layer_runs_under_cpu_bf16_autocast(cell):
    """The unrolled backend under bf16 autocast: the gate pre-activations are bf16 while the carried
    state may be fp32 (the GRU's update once used torch.lerp, which refuses mixed dtypes)."""
    from rnnkit.nn import Recurrent

    torch.manual_seed(0)
    layer = Recurrent(8, 16, cell=cell, backend="unrolled")
    x = torch.randn(3, 5, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = layer(x)
    reference, _ = layer(x)
    assert out.shape == (3, 5, 16) and torch.isfinite(out).all()
    assert torch.allclose(out.float(), reference, atol=0.1)
