"""The one-item decoders that rnnkit.decode replaced, kept as the references its tests compare against:
the char-RNN's beam search, the captioner's and the speech recogniser's beam of one picture or
utterance, and their greedy loops, as they were in the package (with start/end ids named) before the
decoder was shared. Each returns its tokens and, for the beams, the score it ranked them by."""

from __future__ import annotations

import torch

from rnnkit.data.vocab import END_ID, START_ID
from rnnkit.nn import LSTMState


def _select(state, index):
    """Reorder the batch dim (dim 1) of a recurrent state to follow the surviving beams."""
    if isinstance(state, torch.Tensor):
        return state.index_select(1, index)
    return type(state)(*(part.index_select(1, index) for part in state))


def _masked(logits, allowed, banned):
    if banned:
        logits = logits.clone()
        logits[:, list(banned)] = float("-inf")
    if allowed is not None:
        logits = logits.masked_fill(~allowed.to(logits.device), float("-inf"))
    return logits


@torch.no_grad()
def char_rnn_beam(model, prime, length, beam_size, *, form=None, banned=()):
    """The char-RNN's search: one prime, all beams the same length, ranked by the sum of log P."""
    device = next(model.parameters()).device
    logits, state = model(torch.tensor(list(prime), dtype=torch.long, device=device)[None])
    logits = logits[:, -1]
    scores = torch.zeros(1, device=device)
    history = torch.zeros(1, 0, dtype=torch.long, device=device)
    if form is not None:
        form.reset(1)
        length = form.length
    for _ in range(length):
        allowed = form.mask() if form is not None else None
        logp = torch.log_softmax(_masked(logits, allowed, banned).float(), dim=-1)  # (K, V)
        total = (scores[:, None] + logp).reshape(-1)  # (K*V,)
        k = min(beam_size, int(torch.isfinite(total).sum()))
        scores, flat = total.topk(k)
        vocab = logp.shape[-1]
        parent, token = flat // vocab, flat % vocab
        history = torch.cat([history[parent], token[:, None]], dim=1)  # (K, t+1)
        state = _select(state, parent)
        if form is not None:
            form.position = form.position[parent.cpu()]
            form.advance(token)
            if form.finished():
                break
        logits, state = model.step(token, state)
    return history[0].tolist(), float(scores[0]) if length else 0.0


@torch.no_grad()
def caption_greedy(model, image, max_words):
    """Greedy words of one picture ``(1, 3, S, S)``."""
    v = model.features(image)
    ids = torch.full((1,), START_ID, dtype=torch.long, device=v.device)
    state, out = None, []
    for t in range(max_words + 1):
        logits, state = model.step(ids, v, state, first=t == 0)
        ids = logits.argmax(-1)
        if int(ids) == END_ID:
            break
        out.append(int(ids))
    return out


@torch.no_grad()
def caption_beam(model, image, beam_size, max_words, alpha=1.0):
    """The best caption of one picture ``(1, 3, S, S)`` by log P / length^alpha, and that score."""
    v = model.features(image)
    beams: list[tuple[float, list[int]]] = [(0.0, [])]
    state = None
    finished: list[tuple[float, list[int]]] = []
    for t in range(max_words + 1):
        prev = torch.tensor([b[1][-1] if b[1] else START_ID for b in beams], device=v.device)
        logits, state = model.step(prev, v.expand(len(beams), -1), state, first=t == 0)
        logp = torch.log_softmax(logits.float(), -1)
        candidates = []
        for i, (score, ids) in enumerate(beams):
            values, index = logp[i].topk(min(beam_size, logp.shape[-1]))
            candidates += [
                (score + s, [*ids, j], i) for s, j in zip(values.tolist(), index.tolist(), strict=True)
            ]
        candidates.sort(key=lambda c: -c[0])
        beams, parents = [], []
        for score, ids, parent in candidates[:beam_size]:
            if ids[-1] == END_ID:
                finished.append((score / len(ids) ** alpha, ids[:-1]))
            else:
                beams.append((score, ids))
                parents.append(parent)
        if not beams or len(finished) >= beam_size:
            break
        state = _select(state, torch.tensor(parents, device=v.device))
    if not finished:
        finished = [(score / max(1, len(ids)) ** alpha, ids) for score, ids in beams]
    score, ids = max(finished, key=lambda f: f[0])
    return ids, score


@torch.no_grad()
def speech_greedy(model, feats, length, max_chars):
    """Greedy characters of one utterance ``(1, T, F)``."""
    memory, _, mask, keys = model.listen(feats, torch.tensor([length]))
    state, context = model.speller.start(memory)
    prev, out = torch.full((1,), START_ID, dtype=torch.long, device=memory.device), []
    for _ in range(max_chars + 1):
        logits, state, context, _ = model.speller.step(prev, state, context, memory, keys, mask)
        prev = logits.argmax(-1)
        if int(prev) == END_ID:
            break
        out.append(int(prev))
    return out


@torch.no_grad()
def speech_beam(model, feats, length, beam_size, max_chars, alpha=1.0):
    """Beam search over one utterance ``(1, T, F)``: the best transcript by log P / len^alpha, and that
    score."""
    memory, _, mask, keys = model.listen(feats, torch.tensor([length]))
    state, context = model.speller.start(memory)
    beams = [(0.0, [], state, context)]  # (log p, ids, state, context)
    finished = []
    for _ in range(max_chars + 1):
        prev = torch.tensor([b[1][-1] if b[1] else START_ID for b in beams], device=memory.device)
        k = len(beams)
        st = LSTMState(torch.cat([b[2].h for b in beams]), torch.cat([b[2].c for b in beams]))
        ctx = torch.cat([b[3] for b in beams])
        logits, st, ctx, _ = model.speller.step(
            prev, st, ctx, memory.expand(k, -1, -1), keys.expand(k, -1, -1), mask.expand(k, -1)
        )
        logp = torch.log_softmax(logits.float(), -1)
        candidates = []
        for i, (score, ids, _, _) in enumerate(beams):
            values, index = logp[i].topk(min(beam_size, logp.shape[-1]))
            for v, j in zip(values.tolist(), index.tolist(), strict=True):
                candidates.append((score + v, [*ids, j], i))
        candidates.sort(key=lambda c: -c[0])
        beams = []
        for score, ids, parent in candidates[:beam_size]:  # the k best go on, or end here
            if ids[-1] == END_ID:
                finished.append((score / (len(ids) ** alpha), ids[:-1]))
            else:
                beams.append((score, ids, LSTMState(st.h[parent : parent + 1], st.c[parent : parent + 1]),
                              ctx[parent : parent + 1]))  # fmt: skip
        if not beams or len(finished) >= beam_size:
            break
    if not finished:  # nothing ended within max_chars: take the best unfinished one
        finished = [(b[0] / (len(b[1]) ** alpha), b[1]) for b in beams]
    score, ids = max(finished, key=lambda f: f[0])
    return ids, score
