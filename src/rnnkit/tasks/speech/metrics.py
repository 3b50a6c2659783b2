"""Scores of transcripts (whole-word accuracy, character error rate) and batched transcription."""

from __future__ import annotations

from torch import Tensor

from rnnkit.tasks.speech.data import CharTable, pad_frames
from rnnkit.tasks.speech.model import ListenAttendSpell


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def scores(references: list[str], hypotheses: list[str]) -> dict:
    """Word (whole-transcript) accuracy and character error rate (edits / reference characters)."""
    right = sum(r == h for r, h in zip(references, hypotheses, strict=True))
    edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True))
    return {"accuracy": right / len(references), "cer": edits / max(1, sum(len(r) for r in references))}


def transcribe_encoded(
    model: ListenAttendSpell,
    features: list[Tensor],
    chars: CharTable,
    *,
    beam: int = 1,
    decoder: str = "attention",
    batch_size: int = 64,
) -> list[str]:
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = [""] * len(features)
    order = sorted(range(len(features)), key=lambda i: features[i].shape[0])
    limit = chars.max_chars
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        x, lengths = pad_frames([features[i] for i in rows])
        x = x.to(device)
        if decoder == "ctc":
            found = model.ctc_greedy(x, lengths)
        elif beam > 1:
            found = [model.beam(x[j : j + 1, : int(lengths[j])], int(lengths[j]), beam, limit)[0]
                     for j in range(len(rows))]  # fmt: skip
        else:
            found = model.greedy(x, lengths, limit)[0]
        for i, ids in zip(rows, found, strict=True):
            out[i] = chars.decode(ids)
    return out
