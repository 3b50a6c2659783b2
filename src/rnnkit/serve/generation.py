"""Text from a served model for one request: a fair turn between requests, token bursts that notice a
client gone, a whole answer or Server-Sent Events; and an inspection's JSON."""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from starlette.exceptions import HTTPException

from rnnkit import xray
from rnnkit.errors import RnnkitError, UsageError
from rnnkit.generate import Piece, PoemForm, SamplingConfig, generate_pieces
from rnnkit.serve.models import GenerateRequest, Served

log = logging.getLogger("rnnkit.serve")


class FairGate:
    """``slots`` places, given in the order they were asked for. (A plain ``threading.Semaphore`` lets
    the thread that has just released it take it straight back, so a long generation would starve the
    requests waiting behind it.)"""

    def __init__(self, slots: int) -> None:
        self._cond = threading.Condition()
        self._free = slots
        self._queue: collections.deque[object] = collections.deque()

    def acquire(self, cancel: threading.Event | None = None) -> bool:
        """Wait for a slot; ``False`` (and no slot) if ``cancel`` is set first."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while self._queue[0] is not ticket or not self._free:
                if cancel is not None and cancel.is_set():  # gone while in line: leave the line
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                    return False
                self._cond.wait(None if cancel is None else 0.1)
            self._queue.popleft()
            self._free -= 1
            self._cond.notify_all()  # the next in line may take a free slot too
        return True

    def release(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def inspection(name: str, found: xray.Activations, top: int, units: list[int]) -> dict:
    """The JSON of an inspection (also embedded in ``rnnkit inspect`` reports)."""
    size = found.values.shape[1]
    bad = [u for u in units if u >= size]
    if bad:
        raise UsageError(f"units: the layer has {size} units (0..{size - 1}), got {bad[0]}")
    return {
        "model": name,
        "tokens": found.tokens,
        "layer": found.layer,
        "layers": found.num_layers,
        "state": found.state,
        "units": size,
        "activations_int8": found.quantized(),
        "activations": {str(u): [round(float(v), 4) for v in found.values[:, u]] for u in units},
        "features": xray.feature_units(found, top),
    }


# -------------------------------------------------------------------------------------------------
# generation


@dataclass
class Generation:
    served: Served
    body: GenerateRequest
    form: PoemForm | None
    sampling: SamplingConfig
    gate: FairGate
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set when the client has gone: the generation stops at its next burst."""


def prepare_generation(served: Served, body: GenerateRequest, gate: FairGate) -> Generation:
    form = None
    if body.acrostic or body.line_chars or body.lines:
        form = PoemForm(
            served.text_vocab,
            line_chars=body.line_chars or 5,
            lines=body.lines or None,
            acrostic=body.acrostic,
        )
    try:
        sampling = SamplingConfig(temperature=body.temperature, top_k=body.top_k, top_p=body.top_p)
    except UsageError as exc:  # a value out of range, like the field checks': 422
        raise HTTPException(422, str(exc).removeprefix("--")) from None
    return Generation(served, body, form, sampling, gate)


BURST = 16
"""Model steps a request takes in a row before a waiting request gets its worker slot."""


def tokens_of(job: Generation) -> Iterator[dict]:
    """One dict per generated token (:func:`rnnkit.generate.generate_pieces`' pieces): its text (possibly
    empty mid-character), and its candidates.

    The model runs while holding a worker slot of ``job.gate``, ``BURST`` steps at a time, so a long
    generation and short ones share the slots fairly (none waits for another to finish) while the
    switching between them stays rare. The slot is never held while the caller has the token."""
    served, body = job.served, job.body
    vocab = served.text_vocab
    stream = generate_pieces(
        served.model, vocab, body.prime, body.length, job.sampling, seed=body.seed, form=job.form,
        stop=body.stop, logits=bool(body.candidates),
    )  # fmt: skip
    done = False
    while not done:
        burst: list[Piece] = []
        if not job.gate.acquire(job.cancel):
            return
        try:
            for _ in range(BURST):
                piece = None if job.cancel.is_set() else next(stream, None)
                if piece is None:
                    done = True
                    break
                burst.append(piece)
        finally:
            job.gate.release()
        for piece in burst:
            if piece.token is None:  # the decoder's flush of an incomplete character
                yield {"text": piece.text, "token": ""}
                continue
            event: dict = {"text": piece.text, "token": xray.token_label(vocab, piece.token)}
            if piece.logits is not None:
                event["p"] = round(float(torch.softmax(piece.logits.float(), -1)[piece.token]), 5)
                event["candidates"] = xray.top_candidates(vocab, piece.logits, body.candidates)
            yield event


def collect(job: Generation) -> dict:
    started = time.perf_counter()
    events = list(tokens_of(job))
    seconds = time.perf_counter() - started
    out = {
        "model": job.served.name,
        "prime": job.body.prime,
        "text": "".join(e["text"] for e in events),
        "tokens": len(events),
        "seconds": round(seconds, 4),
    }
    if job.body.candidates:
        out["steps"] = events
    return out


def sse(job: Generation) -> Iterator[str]:
    """Server-Sent Events: ``token`` events, then one ``done`` event with the whole text."""
    started = time.perf_counter()
    parts = []
    try:
        for event in tokens_of(job):
            parts.append(event["text"])
            yield f"event: token\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
    except RnnkitError as exc:  # the request was checked before the stream began; this is a safety net
        yield f"event: error\ndata: {json.dumps({'error': str(exc)})}\n\n"
        return
    except Exception:  # the answer has begun (200): the failure can only travel as an event
        log.exception("generate stream of %s failed", job.served.name)
        message = "internal error: the generation failed (details in the server's log)"
        yield f"event: error\ndata: {json.dumps({'error': message})}\n\n"
        return
    done = {
        "model": job.served.name,
        "text": "".join(parts),
        "tokens": len(parts),
        "seconds": round(time.perf_counter() - started, 4),
    }
    yield f"event: done\ndata: {json.dumps(done, ensure_ascii=False)}\n\n"
