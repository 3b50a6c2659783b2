"""Listen, Attend and Spell: the pyramidal listener, the attending speller, and their greedy, beam and CTC
decoders (nn.Modules only)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit import decode
from rnnkit.data.vocab import END_ID, PAD_ID, START_ID
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
            inputs[i, : len(t) + 1] = torch.tensor([START_ID, *t], device=device)  # <s> y1 .. yn
            gold[i, : len(t) + 1] = torch.tensor([*t, END_ID], device=device)  # y1 .. yn </s>
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
                logp, flat, out_lengths, target_lengths, blank=PAD_ID, reduction="sum", zero_infinity=True
            )
        return attention, ctc, chars

    def step_of(self, memory: Tensor, keys: Tensor, mask: Tensor, weights: list[Tensor] | None = None):
        """:meth:`Speller.step` as :mod:`rnnkit.decode` calls it, over the listener's outputs (one row
        each): its state is ``(LSTMState, context)``, batch first; ``weights`` collects each step's
        attention ``(N, U)``."""

        def step(prev: Tensor, state):
            logits, lstm, context, w = self.speller.step(prev, state[0], state[1], memory, keys, mask)
            if weights is not None:
                weights.append(w)
            return logits, (lstm, context)

        return step

    @torch.no_grad()
    def greedy(self, feats: Tensor, lengths: Tensor, max_chars: int):
        """Greedy transcripts of a batch, and each one's attention weights ``(chars + 1, U)`` (``</s>``
        included)."""
        memory, out_lengths, mask, keys = self.listen(feats, lengths)
        start = torch.full((memory.shape[0],), START_ID, dtype=torch.long, device=memory.device)
        weights: list[Tensor] = []
        step = self.step_of(memory, keys, mask, weights)
        ids = decode.greedy(step, start, self.speller.start(memory), max_len=max_chars + 1, end_id=END_ID)
        att = torch.stack(weights, 1)  # (N, steps, U)
        maps = [att[i, : len(row) + 1, : int(out_lengths[i])].cpu() for i, row in enumerate(ids)]
        return ids, maps

    @torch.no_grad()
    def beams(
        self, feats: Tensor, lengths: Tensor, beam_size: int, max_chars: int, alpha: float = 1.0
    ) -> list[list[int]]:
        """The best transcript of each utterance by log P / len^alpha (the length counts ``</s>``):
        :func:`rnnkit.decode.beam_search`, the N x K hypotheses one batch of the speller."""
        memory, _, mask, keys = self.listen(feats, lengths)
        start = torch.full((memory.shape[0],), START_ID, dtype=torch.long, device=memory.device)
        k = beam_size
        step = self.step_of(
            memory.repeat_interleave(k, 0), keys.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
        )
        found = decode.beam_search(
            step, start, self.speller.start(memory), beam_size=k, max_len=max_chars + 1, end_id=END_ID,
            alpha=alpha, select=decode.take_rows,
        )  # fmt: skip
        return [h.tokens for h in found]

    @torch.no_grad()
    def ctc_greedy(self, feats: Tensor, lengths: Tensor) -> list[list[int]]:
        """Best-path CTC decoding: the most likely label per step, repeats merged, blanks removed."""
        if self.ctc is None:
            raise UsageError("--decoder ctc: this model was trained without a CTC head (--ctc-weight 0)")
        memory, out_lengths = self.listener(feats, lengths)
        best = self.ctc(memory).argmax(-1).tolist()
        result = []
        for row, n in zip(best, out_lengths.tolist(), strict=True):
            ids, prev = [], PAD_ID
            for label in row[:n]:
                if label != prev and label > END_ID:  # the specials (blank, <s>, </s>) come first
                    ids.append(label)
                prev = label
            result.append(ids)
        return result
