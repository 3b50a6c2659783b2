"""Listen, Attend and Spell: the pyramidal listener, the attending speller, and their greedy, beam and CTC
decoders (nn.Modules only)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.errors import UsageError
from rnnkit.nn import LSTMState, Pyramid
from rnnkit.nn.cells import LSTMCell
from rnnkit.tasks.speech.config import SpeechModelConfig


class Speller(nn.Module):
    """An LSTM decoder that attends to the listener's outputs at every step (LAS's speller)."""

    def __init__(self, vocab: int, listener_size: int, config: SpeechModelConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, config.embedding_size)
        self.cell = LSTMCell(config.embedding_size + listener_size, config.speller_size)
        self.phi = nn.Sequential(nn.Linear(config.speller_size, config.attention_size), nn.Tanh())
        self.psi = nn.Sequential(nn.Linear(listener_size, config.attention_size), nn.Tanh())
        self.out = nn.Sequential(
            nn.Linear(config.speller_size + listener_size, config.speller_size),
            nn.Tanh(),
            nn.Dropout(config.dropout),
            nn.Linear(config.speller_size, vocab),
        )
        self.listener_size, self.size = listener_size, config.speller_size

    def start(self, memory: Tensor):
        n = memory.shape[0]
        zeros = memory.new_zeros(n, self.size)
        return LSTMState(zeros, zeros), memory.new_zeros(n, self.listener_size)

    def step(self, prev: Tensor, state, context: Tensor, memory: Tensor, keys: Tensor, mask: Tensor):
        """One output character: ``prev`` ``(N,)`` ids -> logits ``(N, V)``, state, context, weights."""
        state = self.cell(torch.cat([self.embedding(prev), context], dim=-1), state)
        energy = torch.einsum("na,nua->nu", self.phi(state.h), keys).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(energy, dim=-1)  # (N, U)
        context = torch.einsum("nu,nuh->nh", weights, memory)
        return self.out(torch.cat([state.h, context], dim=-1)), state, context, weights


class ListenAttendSpell(nn.Module):
    """``Pyramid`` listener + attending ``Speller`` (+ an optional CTC head on the listener)."""

    def __init__(self, n_mels: int, vocab: int, config: SpeechModelConfig) -> None:
        super().__init__()
        self.config = config
        self.listener = Pyramid(
            n_mels, config.listener_size, config.pyramid_layers, cell=config.cell,
            bottom_layers=config.bottom_layers, odd=config.odd, dropout=config.dropout, join=config.pyramid,
        )  # fmt: skip
        self.speller = Speller(vocab, self.listener.output_size, config)
        self.ctc = nn.Linear(self.listener.output_size, vocab) if config.ctc_weight > 0 else None

    def listen(self, feats: Tensor, lengths: Tensor):
        memory, out_lengths = self.listener(feats, lengths)
        steps = torch.arange(memory.shape[1], device=memory.device)
        mask = steps[None] < out_lengths.to(memory.device)[:, None]
        return memory, out_lengths, mask, self.speller.psi(memory)

    def forward(self, feats: Tensor, lengths: Tensor, targets: list[list[int]]):
        """Summed attention loss (teacher forcing) and summed CTC loss of the batch, and the characters."""
        memory, out_lengths, mask, keys = self.listen(feats, lengths)
        device = memory.device
        width = max(len(t) for t in targets) + 1
        inputs = torch.zeros(len(targets), width, dtype=torch.long, device=device)
        gold = torch.full((len(targets), width), -100, dtype=torch.long, device=device)
        for i, t in enumerate(targets):
            inputs[i, : len(t) + 1] = torch.tensor([1, *t], device=device)  # <s> y1 .. yn
            gold[i, : len(t) + 1] = torch.tensor([*t, 2], device=device)  # y1 .. yn </s>
        state, context = self.speller.start(memory)
        logits = []
        for i in range(width):
            out, state, context, _ = self.speller.step(inputs[:, i], state, context, memory, keys, mask)
            logits.append(out)
        scores = torch.stack(logits, dim=1).float()
        attention = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), gold.reshape(-1), reduction="sum")
        chars = int((gold != -100).sum())
        ctc = scores.new_zeros(())
        if self.ctc is not None:
            logp = torch.log_softmax(self.ctc(memory).float(), dim=-1).transpose(0, 1)  # (U, N, V)
            flat = torch.tensor([c for t in targets for c in t], dtype=torch.long)
            target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
            ctc = F.ctc_loss(
                logp, flat, out_lengths, target_lengths, blank=0, reduction="sum", zero_infinity=True
            )
        return attention, ctc, chars

    @torch.no_grad()
    def greedy(self, feats: Tensor, lengths: Tensor, max_chars: int):
        """Greedy transcripts of a batch, and each one's attention weights ``(chars, U)``."""
        memory, out_lengths, mask, keys = self.listen(feats, lengths)
        n = memory.shape[0]
        state, context = self.speller.start(memory)
        prev = torch.ones(n, dtype=torch.long, device=memory.device)
        outs, weights, done = [], [], torch.zeros(n, dtype=torch.bool, device=memory.device)
        for _ in range(max_chars + 1):
            logits, state, context, w = self.speller.step(prev, state, context, memory, keys, mask)
            prev = logits.argmax(-1)
            outs.append(prev)
            weights.append(w)
            done |= prev == 2
            if bool(done.all()):
                break
        ids = torch.stack(outs, 1).tolist()
        att = torch.stack(weights, 1)  # (N, steps, U)
        result, maps = [], []
        for i, row in enumerate(ids):
            end = row.index(2) if 2 in row else len(row)
            result.append(row[:end])
            maps.append(att[i, : end + 1, : int(out_lengths[i])].cpu())
        return result, maps

    @torch.no_grad()
    def beam(self, feats: Tensor, length: int, beam_size: int, max_chars: int, alpha: float = 1.0):
        """Beam search over one utterance ``(1, T, F)``: the best transcript by log P / len^alpha."""
        memory, out_lengths, mask, keys = self.listen(feats, torch.tensor([length]))
        state, context = self.speller.start(memory)
        beams = [(0.0, [], state, context, [])]  # (log p, ids, state, context, weights)
        finished = []
        for _ in range(max_chars + 1):
            prev = torch.tensor([b[1][-1] if b[1] else 1 for b in beams], device=memory.device)
            k = len(beams)
            st = LSTMState(torch.cat([b[2].h for b in beams]), torch.cat([b[2].c for b in beams]))
            ctx = torch.cat([b[3] for b in beams])
            logits, st, ctx, w = self.speller.step(
                prev, st, ctx, memory.expand(k, -1, -1), keys.expand(k, -1, -1), mask.expand(k, -1)
            )
            logp = torch.log_softmax(logits.float(), -1)
            candidates = []
            for i, (score, ids, _, _, ws) in enumerate(beams):
                values, index = logp[i].topk(min(beam_size, logp.shape[-1]))
                for v, j in zip(values.tolist(), index.tolist(), strict=True):
                    candidates.append((score + v, [*ids, j], i, [*ws, w[i].cpu()]))
            candidates.sort(key=lambda c: -c[0])
            beams = []
            for score, ids, parent, ws in candidates[:beam_size]:  # the k best go on, or end here
                if ids[-1] == 2:
                    finished.append((score / (len(ids) ** alpha), ids[:-1], ws))
                else:
                    beams.append((score, ids, LSTMState(st.h[parent : parent + 1], st.c[parent : parent + 1]),
                                  ctx[parent : parent + 1], ws))  # fmt: skip
            if not beams or len(finished) >= beam_size:
                break
        if not finished:  # nothing ended within max_chars: take the best unfinished one
            finished = [(b[0] / (len(b[1]) ** alpha), b[1], b[4]) for b in beams]
        _, ids, ws = max(finished, key=lambda f: f[0])
        return ids, torch.stack(ws)[:, : int(out_lengths[0])]

    @torch.no_grad()
    def ctc_greedy(self, feats: Tensor, lengths: Tensor) -> list[list[int]]:
        """Best-path CTC decoding: the most likely label per step, repeats merged, blanks removed."""
        if self.ctc is None:
            raise UsageError("--decoder ctc: this model was trained without a CTC head (--ctc-weight 0)")
        memory, out_lengths = self.listener(feats, lengths)
        best = self.ctc(memory).argmax(-1).tolist()
        result = []
        for row, n in zip(best, out_lengths.tolist(), strict=True):
            ids, prev = [], 0
            for label in row[:n]:
                if label != prev and label > 2:
                    ids.append(label)
                prev = label
            result.append(ids)
        return result
