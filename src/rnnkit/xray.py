"""What a trained char-RNN is thinking: next-character candidates and hidden-unit activations.

Karpathy, Johnson and Fei-Fei ("Visualizing and Understanding Recurrent Networks", 2015) found single
LSTM cells that track whether the text is inside quotes, how far along a line it is, or how deep in
brackets. :func:`activations` runs a text through a model and keeps every step's state of one layer;
:func:`feature_units` ranks units by their correlation with such simple features of the text;
:func:`token_scores` gives each next token's probability and the model's top candidates. The HTTP
server (``rnnkit serve``) and the HTML report (``rnnkit inspect``) both show these.

Activations are the layer's output :math:`h_t` (in [-1, 1]) or, for an LSTM, :math:`\\tanh(c_t)` of its
cell state (``state="c"``), which tends to hold the long-range counters.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import UsageError

OPENERS, CLOSERS = "([{", ")]}"


def token_label(vocab: Vocabulary, token_id: int) -> str:
    """How a token reads on screen: its character, or ``\\xNN`` for a byte that is not printable ASCII."""
    if vocab.kind == "byte":
        return chr(token_id) if 32 <= token_id < 127 or token_id in (9, 10) else f"\\x{token_id:02x}"
    if vocab.unk_id is not None and token_id == vocab.unk_id:
        return "\ufffd"
    return vocab.tokens[token_id]


def shown_tokens(vocab: Vocabulary, text: str, ids: list[int]) -> list[str]:
    """The text's tokens as read: its own characters for a char model (an unknown one too), else labels."""
    if vocab.kind == "char" and len(ids) == len(text):
        return list(text)
    return [token_label(vocab, i) for i in ids]


def encode_text(vocab: Vocabulary, text: str) -> list[int]:
    ids = vocab.encode(text).tolist()
    if not ids:
        raise UsageError("text: give at least one character")
    return ids


# -------------------------------------------------------------------------------------------------
# next-token probabilities


@dataclass
class Scores:
    tokens: list[str]
    """Each token of the text, as :func:`token_label` shows it."""
    probabilities: list[float | None]
    """p(token i | tokens before it); ``None`` for the first token (nothing predicts it)."""
    candidates: list[list[tuple[str, float]]]
    """For each token i >= 1, the model's top candidates for position i (empty for i = 0)."""
    nats: float
    """Total negative log-probability of tokens 1..n-1."""


@torch.no_grad()
def token_scores(model, vocab: Vocabulary, text: str, top: int = 5) -> Scores:
    """One forward pass over ``text``: every token's probability given the ones before it."""
    ids = encode_text(vocab, text)
    device = next(model.parameters()).device
    x = torch.tensor(ids, dtype=torch.long, device=device)[None]
    logits, _ = model(x)
    logp = torch.log_softmax(logits[0].float(), dim=-1)[:-1]  # row i predicts token i + 1
    target = x[0, 1:]
    chosen = logp.gather(1, target[:, None])[:, 0]
    candidates: list[list[tuple[str, float]]] = [[]]
    if top:
        values, index = logp.exp().topk(min(top, logp.shape[-1]), dim=-1)
        for row_v, row_i in zip(values.tolist(), index.tolist(), strict=True):
            candidates.append(
                [(token_label(vocab, i), round(p, 5)) for p, i in zip(row_v, row_i, strict=True)]
            )
    else:
        candidates += [[] for _ in range(len(ids) - 1)]
    probabilities: list[float | None] = [None, *(round(p, 6) for p in chosen.exp().tolist())]
    return Scores(shown_tokens(vocab, text, ids), probabilities, candidates, float(-chosen.sum()))


def top_candidates(vocab: Vocabulary, logits: torch.Tensor, top: int) -> list[tuple[str, float]]:
    """The ``top`` most likely next tokens of one row of logits, with their probabilities."""
    probs = torch.softmax(logits.float(), dim=-1)
    values, index = probs.topk(min(top, probs.shape[-1]))
    return [
        (token_label(vocab, i), round(p, 5)) for p, i in zip(values.tolist(), index.tolist(), strict=True)
    ]


# -------------------------------------------------------------------------------------------------
# hidden-unit activations


@dataclass
class Activations:
    tokens: list[str]
    values: np.ndarray
    """``(T, H)`` float32: unit h's activation right after reading token t."""
    layer: int
    state: str
    """``h`` (the layer's output) or ``c`` (tanh of an LSTM's cell state)."""
    num_layers: int

    def quantized(self) -> str:
        """The values as int8 (value * 127, rounded), row-major (T, H), base64: compact for a browser."""
        q = np.clip(np.rint(self.values * 127.0), -127, 127).astype(np.int8)
        return base64.b64encode(q.tobytes()).decode("ascii")


@torch.no_grad()
def activations(model, vocab: Vocabulary, text: str, layer: int = -1, state: str = "auto") -> Activations:
    """Run ``text`` through a char model and keep one layer's state after every token."""
    ids = encode_text(vocab, text)
    rnn = model.rnn
    if not -rnn.num_layers <= layer < rnn.num_layers:
        raise UsageError(f"layer: the model has {rnn.num_layers} layers (0..{rnn.num_layers - 1} or -1)")
    layer %= rnn.num_layers
    if state == "auto":
        state = "c" if rnn.is_lstm else "h"
    if state not in ("h", "c") or (state == "c" and not rnn.is_lstm):
        raise UsageError(f"state: expected h{' or c' if rnn.is_lstm else ''}, got {state!r}")
    device = next(model.parameters()).device
    x = model.embedding(torch.tensor(ids, dtype=torch.long, device=device)[None])
    steps = rnn.unroll(x).steps[layer][0]
    parts = [s.c.tanh() if state == "c" else s.h for s in steps] if rnn.is_lstm else list(steps)
    values = torch.cat(parts, dim=0).float().cpu().numpy()  # (T, H)
    return Activations(shown_tokens(vocab, text, ids), values, layer, state, rnn.num_layers)


# -------------------------------------------------------------------------------------------------
# simple features of the text, and the units that follow them


def _in_quotes(tokens: list[str]) -> np.ndarray:
    inside, out = False, []
    for tok in tokens:
        if tok == '"':
            inside = not inside
        out.append(inside)
    return np.array(out, dtype=np.float32)


def _bracket_depth(tokens: list[str]) -> np.ndarray:
    depth, out = 0, []
    for tok in tokens:
        if tok in OPENERS:
            depth += 1
        elif tok in CLOSERS:
            depth = max(0, depth - 1)
        out.append(depth)
    return np.array(out, dtype=np.float32)


def _line_position(tokens: list[str]) -> np.ndarray:
    column, out = 0, []
    for tok in tokens:
        column = 0 if tok == "\n" else column + 1
        out.append(column)
    return np.array(out, dtype=np.float32)


def _newline_next(tokens: list[str]) -> np.ndarray:
    return np.array(
        [tokens[i + 1] == "\n" if i + 1 < len(tokens) else 0 for i in range(len(tokens))], np.float32
    )


FEATURES: dict[str, tuple[str, Callable[[list[str]], np.ndarray]]] = {
    "in_quotes": ('inside "double quotes"', _in_quotes),
    "bracket_depth": ("depth inside ( [ { brackets", _bracket_depth),
    "line_position": ("characters since the line began", _line_position),
    "newline_next": ("the next character is a newline", _newline_next),
}


def feature_units(found: Activations, top: int = 5) -> list[dict]:
    """For each feature of :data:`FEATURES`, the ``top`` units by |Pearson r| with it over the text.

    A feature that does not vary over the text (no quotes at all, say) has no correlation: its list is
    empty and ``varies`` is false.
    """
    values = found.values.astype(np.float64)
    centred = values - values.mean(axis=0)
    unit_norm = np.sqrt((centred**2).sum(axis=0))
    rows = []
    for name, (description, compute) in FEATURES.items():
        feature = compute(found.tokens).astype(np.float64)
        f = feature - feature.mean()
        norm = math.sqrt(float((f**2).sum()))
        units: list[dict] = []
        if norm > 0:
            with np.errstate(invalid="ignore", divide="ignore"):
                r = (centred * f[:, None]).sum(axis=0) / (unit_norm * norm)
            r = np.nan_to_num(r)
            for unit in np.argsort(-np.abs(r))[:top]:
                units.append({"unit": int(unit), "r": round(float(r[unit]), 4)})
        rows.append({"name": name, "description": description, "varies": norm > 0, "units": units})
    return rows
