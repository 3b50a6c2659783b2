import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.nn import LSTMState, Recurrent

TORCH = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
GRID = list(itertools.product(["rnn", "lstm", "gru"], [1, 3], [False, True]))


def parts(state):
    return tuple(state) if isinstance(state, tuple) else (state,)


def close(a, b, tol=1e-5):
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


def torch_twin(layer: Recurrent) -> torch.nn.RNNBase:
    kwargs = {"nonlinearity": layer.nonlinearity} if layer.cell == "rnn" else {}
    twin = TORCH[layer.cell](
        layer.input_size,
        layer.hidden_size,
        num_layers=layer.num_layers,
        bidirectional=layer.bidirectional,
        batch_first=True,
        **kwargs,
    )
    twin.load_state_dict(layer.state_dict())
    return twin


def random_lengths(batch, steps):
    lengths = torch.randint(1, steps + 1, (batch,))
    lengths[0] = steps
    return lengths


@pytest.mark.parametrize(("cell", "layers", "bidir"), GRID)
def test_state_dict_keys_and_shapes_equal_torch(cell, layers, bidir):
    ours = Recurrent(4, 6, cell=cell, num_layers=layers, bidirectional=bidir)
    theirs = TORCH[cell](4, 6, num_layers=layers, bidirectional=bidir, batch_first=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    # and weights load the other way too
    ours.load_state_dict(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value)


@pytest.mark.parametrize("backend", ["fused", "unrolled"])
@pytest.mark.parametrize(("cell", "layers", "bidir"), GRID)
def test_equals_torch_with_random_lengths(cell, layers, bidir, backend):
    ours = Recurrent(5, 7, cell=cell, num_layers=layers, bidirectional=bidir, backend=backend)
    theirs = torch_twin(ours)
    batch, steps = 6, 9
    x = torch.randn(batch, steps, 5)
    lengths = random_lengths(batch, steps)
    state = tuple(
        torch.randn(layers * ours.num_directions, batch, 7) for _ in parts(ours._initial_state(x, None))
    )
    state = LSTMState(*state) if cell == "lstm" else state[0]

    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_t, state_t = theirs(packed, tuple(state) if cell == "lstm" else state)
    out_t, _ = pad_packed_sequence(out_t, batch_first=True, total_length=steps)
    out, final = ours(x, lengths, state)
    assert out.shape == (batch, steps, ours.num_directions * 7)
    close(out, out_t)
    for a, b in zip(parts(final), parts(state_t), strict=True):
        close(a, b)
    # padded steps are exactly zero
    for b, n in enumerate(lengths.tolist()):
        assert torch.count_nonzero(out[b, n:]) == 0


@pytest.mark.parametrize(("cell", "layers", "bidir"), GRID)
def test_equals_torch_without_lengths(cell, layers, bidir):
    ours = Recurrent(3, 4, cell=cell, num_layers=layers, bidirectional=bidir)
    theirs = torch_twin(ours)
    x = torch.randn(2, 5, 3)
    out, final = ours(x)
    out_t, final_t = theirs(x)
    close(out, out_t)
    for a, b in zip(parts(final), parts(final_t), strict=True):
        close(a, b)


@pytest.mark.parametrize(("cell", "layers", "bidir"), GRID)
def test_fused_equals_unrolled_values_and_gradients(cell, layers, bidir):
    fused = Recurrent(4, 5, cell=cell, num_layers=layers, bidirectional=bidir)
    unrolled = Recurrent(4, 5, cell=cell, num_layers=layers, bidirectional=bidir, backend="unrolled")
    unrolled.load_state_dict(fused.state_dict())
    x = torch.randn(3, 6, 4)
    lengths = torch.tensor([6, 3, 1])
    results = []
    for layer in (fused, unrolled):
        out, final = layer(x, lengths)
        loss = out.pow(2).sum() + sum(p.sum() for p in parts(final))
        grads = torch.autograd.grad(loss, list(layer.parameters()))
        results.append((out, parts(final), grads))
    (o1, f1, g1), (o2, f2, g2) = results
    close(o1, o2)
    for a, b in zip(f1 + g1, f2 + g2, strict=True):
        close(a, b, tol=1e-4)


def test_relu_rnn_equals_torch():
    ours = Recurrent(3, 4, cell="rnn", nonlinearity="relu", num_layers=2, bidirectional=True)
    theirs = torch_twin(ours)
    x = torch.randn(2, 5, 3)
    close(ours(x)[0], theirs(x)[0])
    ours.backend = "unrolled"
    close(ours(x)[0], theirs(x)[0])


@pytest.mark.parametrize("backend", ["fused", "unrolled"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_stepping_one_token_at_a_time_equals_whole_sequence(cell, backend):
    layer = Recurrent(3, 6, cell=cell, num_layers=3, backend=backend)
    x = torch.randn(2, 7, 3)
    whole, final = layer(x)
    state, outputs = None, []
    for t in range(7):
        out, state = layer(x[:, t : t + 1], state=state)
        outputs.append(out)
    close(torch.cat(outputs, dim=1), whole)
    for a, b in zip(parts(state), parts(final), strict=True):
        close(a, b)


@pytest.mark.parametrize("backend", ["fused", "unrolled"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_sequence_alone_equals_inside_padded_batch(cell, backend):
    layer = Recurrent(3, 4, cell=cell, num_layers=2, bidirectional=True, backend=backend)
    seqs = [torch.randn(n, 3) for n in (5, 2, 8, 1)]
    batch = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=7.0)
    lengths = torch.tensor([len(s) for s in seqs])
    out, final = layer(batch, lengths)
    for b, seq in enumerate(seqs):
        alone, alone_final = layer(seq[None])
        close(out[b, : len(seq)], alone[0])
        for a, f in zip(parts(final), parts(alone_final), strict=True):
            close(a[:, b], f[:, 0])


def test_backward_direction_starts_at_own_last_step():
    """The backward state of a padded sequence at its first step equals a pure backward pass."""
    layer = Recurrent(2, 3, cell="rnn", bidirectional=True, backend="unrolled")
    x = torch.randn(1, 4, 2)
    padded = torch.cat([x, torch.randn(1, 3, 2) * 100], dim=1)
    out_alone, _ = layer(x)
    out_padded, _ = layer(padded, torch.tensor([4]))
    close(out_padded[0, 0, 3:], out_alone[0, 0, 3:])  # backward half at t=0


def test_deep_bidirectional_layer_reads_both_directions_of_layer_below():
    """Layer 1 at step t sees layer 0's [forward; backward] outputs at step t, as the tutorial says."""
    deep = Recurrent(3, 4, cell="gru", num_layers=2, bidirectional=True)
    x = torch.randn(2, 5, 3)
    out, _ = deep(x)
    bottom = Recurrent(3, 4, cell="gru", bidirectional=True)
    top = Recurrent(8, 4, cell="gru", bidirectional=True)
    sd = deep.state_dict()
    bottom.load_state_dict({k: v for k, v in sd.items() if "_l0" in k})
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in sd.items() if "_l1" in k})
    close(out, top(bottom(x)[0])[0])


def test_unroll_exposes_every_step_and_its_gradient():
    layer = Recurrent(3, 4, cell="lstm", num_layers=2, bidirectional=True)
    x = torch.randn(2, 6, 3)
    trace = layer.unroll(x)
    out, _final = layer(x)
    close(trace.output, out)
    assert len(trace.steps) == 2 and len(trace.steps[0]) == 2 and len(trace.steps[0][0]) == 6
    # the forward direction's last step of the top layer is the top layer's output at T-1
    close(trace.steps[1][0][5].h, out[:, 5, :4])
    close(trace.steps[1][1][0].h, out[:, 0, 4:])
    # gradients reach every earlier state through the graph
    states = [s.h for s in trace.steps[0][0]]
    loss = trace.output[:, -1, :4].sum()
    grads = torch.autograd.grad(loss, states)
    assert all(g.abs().sum() > 0 for g in grads)


def test_dropout_only_between_layers_and_only_in_training():
    layer = Recurrent(3, 4, num_layers=2, dropout=0.5)
    x = torch.randn(2, 5, 3)
    layer.eval()
    a, _ = layer(x)
    b, _ = layer(x)
    assert torch.equal(a, b)
    layer.train()
    c, _ = layer(x)
    assert not torch.allclose(a, c)


def test_no_bias_equals_torch():
    ours = Recurrent(3, 4, cell="lstm", bias=False, num_layers=2)
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bias=False, batch_first=True)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 5, 3)
    close(ours(x)[0], theirs(x)[0])
    ours.backend = "unrolled"
    close(ours(x)[0], theirs(x)[0])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"cell": "transformer"}, "cell"),
        ({"num_layers": 0}, "num_layers"),
        ({"dropout": 1.5}, "dropout"),
        ({"backend": "cuda"}, "backend"),
        ({"nonlinearity": "sigmoid"}, "nonlinearity"),
        ({"cell": "lstm", "nonlinearity": "relu"}, "nonlinearity"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Recurrent(3, 4, **kwargs)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda r: r(torch.randn(2, 3)), "input"),
        (lambda r: r(torch.randn(2, 4, 5)), "input"),
        (lambda r: r(torch.randn(2, 4, 3), torch.tensor([5, 2])), "lengths"),
        (lambda r: r(torch.randn(2, 4, 3), torch.tensor([0, 2])), "lengths"),
        (lambda r: r(torch.randn(2, 4, 3), torch.tensor([1, 2, 3])), "lengths"),
        (lambda r: r(torch.randn(2, 4, 3), torch.tensor([1.0, 2.0])), "lengths"),
        (lambda r: r(torch.randn(2, 4, 3), state=torch.zeros(1, 2, 4)), "state"),
        (lambda r: r(torch.randn(2, 4, 3), state=(torch.zeros(2, 2, 4),) * 2), "state"),
    ],
)
def test_bad_forward_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call(Recurrent(3, 4, cell="lstm"))


def test_repr_names_the_configuration():
    text = repr(Recurrent(3, 4, cell="gru", num_layers=2, bidirectional=True, dropout=0.1))
    assert "cell='gru'" in text and "num_layers=2" in text and "bidirectional=True" in text


KERNELS = {"rnn": "aten::rnn_tanh", "lstm": "aten::lstm", "gru": "aten::gru"}


def top_level_ops(layer, x, lengths):
    """The names of the ops one forward pass dispatches from Python (ops inside a kernel not counted)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        layer(x, lengths)
    return [event.name for event in prof.events() if event.cpu_parent is None]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("padded", [False, True])
def test_fused_backend_is_one_call_of_torchs_fused_kernel(cell, padded):
    """The fused backend is torch's whole-sequence kernel, not a loop over time in Python."""
    layer = Recurrent(3, 4, cell=cell, num_layers=2, bidirectional=True)
    x = torch.randn(2, 12, 3)
    lengths = torch.tensor([12, 5]) if padded else None
    math = {"aten::linear", "aten::addmm", "aten::sigmoid", "aten::tanh", "aten::add", "aten::lerp"}
    ops = top_level_ops(layer, x, lengths)
    assert ops.count(KERNELS[cell]) == 1, ops
    assert not math & set(ops), ops
    layer.backend = "unrolled"  # what the test tells apart: a loop over time runs the cell's math itself
    ops = top_level_ops(layer, x, lengths)
    assert KERNELS[cell] not in ops and ops.count("aten::linear") > 12  # a hidden projection a step


def test_fused_backend_runs_on_the_parameters_the_layer_has_now():
    """Weights replaced by a loaded state dict (assign=True), given for one call by torch.func, or those of a
    deep copy: the fused kernel reads the layer's own parameters of the moment, never a stale copy."""
    import copy

    layer = Recurrent(3, 4, cell="lstm", num_layers=2, bidirectional=True)
    theirs = torch_twin(layer)
    assert len(list(layer.parameters())) == len(list(theirs.parameters()))  # nothing registered twice
    x = torch.randn(2, 5, 3)
    close(layer(x)[0], theirs(x)[0])

    other = {k: torch.randn_like(v) for k, v in layer.state_dict().items()}
    theirs.load_state_dict(other)
    expected = theirs(x)[0]
    before = layer(x)[0]
    close(torch.func.functional_call(layer, other, (x,))[0], expected)
    close(layer(x)[0], before)  # its own weights again after the call

    twin = copy.deepcopy(layer)
    layer.load_state_dict(other, assign=True)  # new Parameter objects
    assert layer.weight_hh_l1_reverse is not twin.weight_hh_l1_reverse
    close(layer(x)[0], expected)
    close(twin(x)[0], before)  # the copy keeps the weights it was copied with
    with torch.no_grad():
        twin.weight_ih_l0.zero_()
    close(layer(x)[0], expected)  # and changing the copy leaves the original alone
    assert not torch.allclose(twin(x)[0], before)
