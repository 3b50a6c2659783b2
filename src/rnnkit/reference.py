r"""The tutorial's vanilla RNN language model in NumPy float64, with backpropagation through time by hand.

No autograd: every derivative below is written out, so this module is both a teaching text and the
oracle our tests hold the torch code to. The model, for one-hot inputs :math:`x_t` over a vocabulary of
size :math:`V_{in}` and :math:`K` output classes:

.. math::
    \begin{aligned}
    s_t &= \tanh(U x_t + W s_{t-1} + b), \qquad s_{-1} = h_0 \\
    o_t &= \mathrm{softmax}(V s_t + c) \\
    E &= \sum_t E_t, \qquad E_t = -\log o_t[y_t]
    \end{aligned}

with ``U`` ``(H, V_in)``, ``W`` ``(H, H)``, ``V`` ``(K, H)``, ``b`` ``(H,)`` and ``c`` ``(K,)``. The same
``U``, ``W`` and ``V`` serve every step, so the gradient of each is a sum over the steps that used it.
BPTT walks the steps backwards carrying :math:`\delta_t = \partial E / \partial s_t`:

.. math::
    \begin{aligned}
    \partial E / \partial z_t &= o_t - \mathrm{onehot}(y_t)  \quad (z_t = V s_t + c) \\
    \delta_t &= V^\top (o_t - \mathrm{onehot}(y_t)) + W^\top \big((1 - s_{t+1}^2) \odot \delta_{t+1}\big) \\
    \partial E / \partial W &= \sum_t \big((1 - s_t^2) \odot \delta_t\big)\, s_{t-1}^\top
    \end{aligned}

and :func:`dEt_dW_terms` splits one step's gradient into the tutorial's sum over earlier steps,
:math:`\partial E_t/\partial W = \sum_{k \le t} (\partial E_t/\partial s_t)(\partial s_t/\partial s_k)
(\partial^+ s_k/\partial W)`, where :math:`\partial^+` is the immediate derivative (``s_{k-1}`` held
constant). ``docs/bptt.md`` walks through the derivation.

References: D. Rumelhart, G. Hinton and R. Williams, "Learning representations by back-propagating
errors", Nature 323, 1986; P. Werbos, "Backpropagation through time: what it does and how to do it",
Proc. IEEE 78(10), 1990; A. Karpathy's min-char-rnn (the structure of :func:`bptt`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PARAM_NAMES = ("U", "W", "V", "b", "c")
Params = dict[str, np.ndarray]


def init_params(vocab_size: int, hidden_size: int, num_classes: int | None = None, seed: int = 0) -> Params:
    """Random float64 parameters, weights from :math:`\\mathcal{N}(0, 0.1^2)` and zero biases."""
    rng = np.random.default_rng(seed)
    classes = vocab_size if num_classes is None else num_classes
    return {
        "U": rng.normal(0.0, 0.1, (hidden_size, vocab_size)),
        "W": rng.normal(0.0, 0.1, (hidden_size, hidden_size)),
        "V": rng.normal(0.0, 0.1, (classes, hidden_size)),
        "b": np.zeros(hidden_size),
        "c": np.zeros(classes),
    }


def _check(params: Params, inputs: Sequence[int], targets: Sequence[int], h0: np.ndarray) -> None:
    missing = [name for name in PARAM_NAMES if name not in params]
    if missing:
        raise ValueError(f"params: missing {missing}")
    hidden, vocab = params["U"].shape
    classes = params["V"].shape[0]
    if len(inputs) != len(targets) or not len(inputs):
        raise ValueError(
            f"inputs, targets: expected equal non-zero lengths, got {len(inputs)}, {len(targets)}"
        )
    if np.shape(h0) != (hidden,):
        raise ValueError(f"h0: expected shape ({hidden},), got {np.shape(h0)}")
    if min(inputs) < 0 or max(inputs) >= vocab:
        raise ValueError(f"inputs: expected ids in [0, {vocab})")
    if min(targets) < 0 or max(targets) >= classes:
        raise ValueError(f"targets: expected ids in [0, {classes})")


def forward(params: Params, inputs: Sequence[int], h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """States ``s`` ``(T, H)`` and output probabilities ``o`` ``(T, K)`` for the token ids ``inputs``."""
    U, W, V, b, c = (params[name] for name in PARAM_NAMES)
    states = np.empty((len(inputs), W.shape[0]))
    s = np.asarray(h0, dtype=np.float64)
    for t, token in enumerate(inputs):
        s = np.tanh(U[:, token] + W @ s + b)  # U x_t picks column x_t of U for a one-hot x_t
        states[t] = s
    z = states @ V.T + c  # (T, K)
    z -= z.max(axis=1, keepdims=True)  # stable softmax: subtracting a constant changes nothing
    probs = np.exp(z)
    probs /= probs.sum(axis=1, keepdims=True)
    return states, probs


def bptt(
    params: Params, inputs: Sequence[int], targets: Sequence[int], h0: np.ndarray
) -> tuple[float, Params, np.ndarray]:
    """Loss, gradients and last state of the vanilla RNN language model on one sequence.

    Args:
        params: ``U, W, V, b, c`` as in the module docstring (float64 arrays).
        inputs: token ids :math:`x_0 .. x_{T-1}`.
        targets: class ids :math:`y_0 .. y_{T-1}` (for a language model, the next tokens).
        h0: the state before the first step, ``(H,)``.

    Returns:
        ``(loss, grads, h_last)``: ``loss`` is :math:`\\sum_t -\\log o_t[y_t]`; ``grads`` holds the
        gradient of the loss for each of ``U, W, V, b, c`` and for ``h0``; ``h_last`` is :math:`s_{T-1}`,
        to carry into the next chunk of a truncated BPTT.
    """
    _check(params, inputs, targets, h0)
    _U, W, V = params["U"], params["W"], params["V"]
    states, probs = forward(params, inputs, h0)
    steps = len(inputs)
    loss = -float(np.sum(np.log(probs[np.arange(steps), targets])))

    grads = {name: np.zeros_like(params[name], dtype=np.float64) for name in PARAM_NAMES}
    dz = probs.copy()
    dz[np.arange(steps), targets] -= 1.0  # dE_t/dz_t = o_t - onehot(y_t), (T, K)
    grads["V"] = dz.T @ states  # sum_t dz_t s_t^T
    grads["c"] = dz.sum(axis=0)
    delta_next = np.zeros(W.shape[0])  # dE/ds_t through s_{t+1}: zero after the last step
    for t in reversed(range(steps)):
        delta = V.T @ dz[t] + delta_next  # dE/ds_t
        da = (1.0 - states[t] ** 2) * delta  # through tanh: dE/da_t, a_t = U x_t + W s_{t-1} + b
        s_prev = states[t - 1] if t else np.asarray(h0, dtype=np.float64)
        grads["U"][:, inputs[t]] += da
        grads["W"] += np.outer(da, s_prev)
        grads["b"] += da
        delta_next = W.T @ da
    grads["h0"] = delta_next
    return loss, grads, states[-1].copy()


def dEt_dW_terms(
    params: Params, inputs: Sequence[int], targets: Sequence[int], h0: np.ndarray, t: int
) -> np.ndarray:
    """The tutorial's per-step terms of :math:`\\partial E_t / \\partial W`, shape ``(t+1, H, H)``.

    Term ``k`` is
    :math:`(\\partial E_t/\\partial s_t)(\\partial s_t/\\partial s_k)(\\partial^+ s_k/\\partial W)`:
    how much the use of ``W`` at step ``k`` contributes to the loss at step ``t``. Their sum over ``k`` is
    :math:`\\partial E_t / \\partial W`, and summing that over ``t`` gives ``bptt``'s ``grads["W"]``. The
    norm of term ``k`` typically shrinks geometrically in ``t - k`` for a tanh RNN: the vanishing gradient.
    """
    _check(params, inputs, targets, h0)
    if not 0 <= t < len(inputs):
        raise ValueError(f"t: expected a step in [0, {len(inputs)}), got {t}")
    W, V = params["W"], params["V"]
    states, probs = forward(params, inputs, h0)
    dz = probs[t].copy()
    dz[targets[t]] -= 1.0
    delta = V.T @ dz  # dE_t/ds_t
    terms = np.empty((t + 1, *W.shape))
    for k in reversed(range(t + 1)):
        da = (1.0 - states[k] ** 2) * delta  # dE_t/da_k through s_k
        s_prev = states[k - 1] if k else np.asarray(h0, dtype=np.float64)
        terms[k] = np.outer(da, s_prev)  # times the immediate derivative of a_k by W
        delta = W.T @ da  # dE_t/ds_{k-1} = (dE_t/ds_k)(ds_k/ds_{k-1})
    return terms
