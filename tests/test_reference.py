import numpy as np
import pytest
import torch

from rnnkit import reference

VOCAB, HIDDEN = 5, 4


@pytest.fixture
def problem():
    params = reference.init_params(VOCAB, HIDDEN, seed=1)
    rng = np.random.default_rng(2)
    params["b"] = rng.normal(0, 0.1, HIDDEN)
    params["c"] = rng.normal(0, 0.1, VOCAB)
    inputs = rng.integers(0, VOCAB, 8).tolist()
    targets = rng.integers(0, VOCAB, 8).tolist()
    h0 = rng.normal(0, 0.5, HIDDEN)
    return params, inputs, targets, h0


def loss_of(params, inputs, targets, h0):
    return reference.bptt(params, inputs, targets, h0)[0]


def test_bptt_equals_central_finite_differences(problem):
    params, inputs, targets, h0 = problem
    _, grads, _ = reference.bptt(params, inputs, targets, h0)
    eps = 1e-5
    for name in [*reference.PARAM_NAMES, "h0"]:
        target = h0 if name == "h0" else params[name]
        numeric = np.zeros_like(target)
        for index in np.ndindex(target.shape):
            saved = target[index]
            target[index] = saved + eps
            plus = loss_of(params, inputs, targets, h0)
            target[index] = saved - eps
            minus = loss_of(params, inputs, targets, h0)
            target[index] = saved
            numeric[index] = (plus - minus) / (2 * eps)
        rel = np.linalg.norm(grads[name] - numeric) / max(np.linalg.norm(grads[name] + numeric), 1e-12)
        assert rel < 1e-6, (name, rel)


def test_bptt_equals_torch_autograd(problem):
    params, inputs, targets, h0 = problem
    loss, grads, h_last = reference.bptt(params, inputs, targets, h0)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    th0 = torch.tensor(h0, requires_grad=True)
    s, total = th0, torch.zeros((), dtype=torch.float64)
    for x, y in zip(inputs, targets, strict=True):
        s = torch.tanh(tp["U"][:, x] + tp["W"] @ s + tp["b"])
        total = total - torch.log_softmax(tp["V"] @ s + tp["c"], dim=0)[y]
    total.backward()
    assert abs(loss - total.item()) < 1e-10
    np.testing.assert_allclose(h_last, s.detach().numpy(), rtol=0, atol=1e-12)
    for name in reference.PARAM_NAMES:
        err = np.abs(grads[name] - tp[name].grad.numpy()).max()
        assert err < 1e-8, (name, err)
    assert np.abs(grads["h0"] - th0.grad.numpy()).max() < 1e-8


def test_per_step_terms_sum_to_the_gradient(problem):
    params, inputs, targets, h0 = problem
    _, grads, _ = reference.bptt(params, inputs, targets, h0)
    total = sum(
        reference.dEt_dW_terms(params, inputs, targets, h0, t).sum(axis=0) for t in range(len(inputs))
    )
    np.testing.assert_allclose(total, grads["W"], rtol=0, atol=1e-12)


def test_per_step_term_at_t_equals_gradient_of_that_step_alone(problem):
    """Sum_k term_k of step t is dE_t/dW: checked against bptt on a sequence cut after step t."""
    params, inputs, targets, h0 = problem
    t = 5
    terms = reference.dEt_dW_terms(params, inputs, targets, h0, t)
    assert terms.shape == (t + 1, HIDDEN, HIDDEN)
    full = reference.bptt(params, inputs[: t + 1], targets[: t + 1], h0)[1]["W"]
    before = reference.bptt(params, inputs[:t], targets[:t], h0)[1]["W"]
    np.testing.assert_allclose(terms.sum(axis=0), full - before, rtol=0, atol=1e-12)


def test_distant_terms_vanish_for_small_weights():
    params = reference.init_params(VOCAB, 16, seed=3)
    inputs = list(range(VOCAB)) * 6
    terms = reference.dEt_dW_terms(params, inputs, inputs, np.zeros(16), t=len(inputs) - 1)
    norms = np.linalg.norm(terms.reshape(len(terms), -1), axis=1)
    assert norms[-1] > 1e3 * norms[0]


def test_truncated_chunks_carry_the_state(problem):
    params, inputs, targets, h0 = problem
    _, _, h_mid = reference.bptt(params, inputs[:4], targets[:4], h0)
    loss2, _, h_end = reference.bptt(params, inputs[4:], targets[4:], h_mid)
    loss_all, _, h_all = reference.bptt(params, inputs, targets, h0)
    loss1 = reference.bptt(params, inputs[:4], targets[:4], h0)[0]
    assert abs(loss1 + loss2 - loss_all) < 1e-12
    np.testing.assert_allclose(h_end, h_all, atol=1e-14)


@pytest.mark.parametrize(
    ("change", "name"),
    [
        (lambda p, i, t, h: (p, i, t[:-1], h), "targets"),
        (lambda p, i, t, h: (p, [VOCAB, *i[1:]], t, h), "inputs"),
        (lambda p, i, t, h: (p, i, t, h[:-1]), "h0"),
        (lambda p, i, t, h: ({k: v for k, v in p.items() if k != "W"}, i, t, h), "params"),
    ],
)
def test_bad_arguments_name_the_argument(problem, change, name):
    with pytest.raises(ValueError, match=name):
        reference.bptt(*change(*problem))


@pytest.mark.parametrize("backend", ["fused", "unrolled"])
def test_recurrent_vanilla_rnn_trains_like_the_reference(problem, backend):
    """Recurrent(cell="rnn") + a linear output layer is the tutorial model: same loss, same BPTT."""
    from rnnkit.nn import Recurrent

    params, inputs, targets, h0 = problem
    layer = Recurrent(VOCAB, HIDDEN, cell="rnn", backend=backend).double()
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.tensor(params["U"]))
        layer.weight_hh_l0.copy_(torch.tensor(params["W"]))
        layer.bias_ih_l0.copy_(torch.tensor(params["b"]))
        layer.bias_hh_l0.zero_()
    V = torch.tensor(params["V"], requires_grad=True)
    c = torch.tensor(params["c"], requires_grad=True)
    x = torch.nn.functional.one_hot(torch.tensor(inputs), VOCAB).double()[None]  # (1, T, V)
    out, _ = layer(x, state=torch.tensor(h0)[None, None])
    logits = out[0] @ V.T + c
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets), reduction="sum")
    loss.backward()
    ref_loss, grads, _ = reference.bptt(params, inputs, targets, h0)
    assert abs(loss.item() - ref_loss) < 1e-10
    assert np.abs(layer.weight_ih_l0.grad.numpy() - grads["U"]).max() < 1e-8
    assert np.abs(layer.weight_hh_l0.grad.numpy() - grads["W"]).max() < 1e-8
    assert np.abs(layer.bias_ih_l0.grad.numpy() - grads["b"]).max() < 1e-8
    assert np.abs(V.grad.numpy() - grads["V"]).max() < 1e-8
    assert np.abs(c.grad.numpy() - grads["c"]).max() < 1e-8
