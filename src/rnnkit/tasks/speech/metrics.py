"""Scores of transcripts (whole-word accuracy, character error rate), batched transcription, and a
trained recogniser's evaluation on a split of the recordings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from rnnkit.data.vocab import TokenTable
from rnnkit.errors import UsageError
from rnnkit.tasks.speech.data import list_fsdd, pad_frames, split_fsdd
from rnnkit.tasks.speech.model import ListenAttendSpell

if TYPE_CHECKING:  # annotations only: the loaded recogniser sits above this module
    from rnnkit.tasks.speech.task import LoadedSpeech

SPLITS = ("train", "val", "test")
"""The splits of the recordings, in the order :func:`~rnnkit.tasks.speech.data.split_fsdd` returns them."""


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
    chars: TokenTable,
    *,
    beam: int = 1,
    decoder: str = "attention",
    batch_size: int = 64,
) -> list[str]:
    """The transcript of each utterance's features: greedy (``beam`` 1), batched beam search over the
    speller (``beam`` > 1, :meth:`ListenAttendSpell.beams`), or the CTC head's best path (``decoder``
    ``"ctc"``); ``batch_size`` utterances of similar length at a time."""
    if beam < 1:
        raise UsageError(f"beam: expected 1 or more, got {beam}")
    if decoder not in ("attention", "ctc"):
        raise UsageError(f"decoder: expected attention or ctc, got {decoder!r}")
    if not features:
        return []
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = [""] * len(features)
    order = sorted(range(len(features)), key=lambda i: features[i].shape[0])
    limit = chars.max_length
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        x, lengths = pad_frames([features[i] for i in rows])
        x = x.to(device)
        if decoder == "ctc":
            found = model.ctc_greedy(x, lengths)
        elif beam > 1:
            found = model.beams(x, lengths, beam, limit)
        else:
            found = model.greedy(x, lengths, limit)[0]
        for i, ids in zip(rows, found, strict=True):
            out[i] = chars.decode(ids)
    return out


def evaluate_recordings(
    loaded: LoadedSpeech, wav_dir: Path, *, split: str = "test", beam: int = 1, decoder: str = "attention"
) -> dict:
    """:func:`scores` of a trained recogniser on one split of ``wav_dir`` (test, val or train), chosen as
    its run chose them: the official test split (index 0-4) or the run's held-out speaker, and the
    validation share drawn with the run's seed. Also the recordings it got wrong (the first 20) and the
    seconds transcription took."""
    d = loaded.config.data
    parts = split_fsdd(list_fsdd(wav_dir), d.holdout_speaker, d.val_fraction, loaded.config.train.seed)
    chosen = parts[SPLITS.index(split)]
    started = time.perf_counter()
    hyps = loaded.transcribe([u.path for u in chosen], beam=beam, decoder=decoder)
    seconds = time.perf_counter() - started
    wrong = [f"{u.path.name}: {h!r}" for u, h in zip(chosen, hyps, strict=True) if h != u.text]
    return scores([u.text for u in chosen], hyps) | {
        "recordings": len(chosen), "split": split, "holdout_speaker": d.holdout_speaker or None,
        "decoder": decoder, "beam": beam, "checkpoint": loaded.checkpoint, "seconds": round(seconds, 3),
        "errors": wrong[:20],
    }  # fmt: skip
