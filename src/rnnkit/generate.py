"""Sampling and beam search over any model with a ``step`` method.

A model qualifies when ``model(ids, state=None) -> (logits (B, T, V), state)`` reads a batch of
sequences, ``model.step(ids (B,), state) -> (logits (B, V), state)`` advances one token and
``model.vocab_size`` is V. Beam search is :mod:`rnnkit.decode`'s, and :func:`generate_pieces` is the one
way from a model to text (``rnnkit sample``, the server, the samples printed during training). Everything
here runs under ``torch.no_grad`` and is deterministic for a given seed.

``precision`` chooses what the model's recurrent matrices are read in while it writes (the prime is
read in fp32 by the model itself): ``fp32``, the weights as trained, through ``model.step``; ``bf16``
(native on AVX512-BF16/AMX CPUs and GPUs) or ``int8`` (opt-in, CPU only), through a
:class:`rnnkit.nn.Stepper` of that precision, for models made of ``embedding -> rnn -> head`` (the
char-RNN); ``auto``: bf16 where the hardware computes it natively, else fp32. One stream reads every
weight for every token, so narrower weights are faster where memory is the limit (docs/scaling.md).

Constraints shape the text by masking the next-token distribution, never by rejection: a
:class:`PoemForm` makes every line exactly ``line_chars`` Chinese characters followed by the right
punctuation, and an acrostic (藏头诗) forces the first character of each line.
"""

from __future__ import annotations

import math
import unicodedata
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit import decode
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import CheckpointError, UsageError
from rnnkit.nn import Recurrent, Stepper

#: What ``precision`` may be in :class:`SamplingConfig`, :func:`sample`, :func:`beam_search` and
#: :func:`generate_pieces`.
PRECISIONS = ("fp32", "bf16", "int8", "auto")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise UsageError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")


@dataclass(kw_only=True)
class SamplingConfig:
    """How to pick each next token."""

    temperature: float = 1.0
    """Divide the logits by this; 0 means greedy (always the most likely token), and so, in the limit,
    does any temperature too small for the division to be told from it."""
    top_k: int = 0
    """Sample among the k most likely tokens only (0: all)."""
    top_p: float = 1.0
    """Sample among the most likely tokens whose probabilities add up to p (nucleus sampling; 1: all)."""
    precision: str = "fp32"
    """What the model's recurrent weights are read in while it writes: fp32 (as trained), bf16, int8
    (opt-in, CPU only) or auto (bf16 where the hardware computes it natively, else fp32); see the
    module's notes."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise UsageError(f"--temperature: expected a finite number, 0 or more, got {self.temperature}")
        if self.top_k < 0:
            raise UsageError(f"--top-k: expected 0 or more, got {self.top_k}")
        if not (math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise UsageError(f"--top-p: expected a finite value in (0, 1], got {self.top_p}")
        check_precision(self.precision)


def next_token(logits: Tensor, config: SamplingConfig, generator: torch.Generator | None) -> Tensor:
    """Pick one id per row of ``logits`` ``(B, V)`` (already masked with ``-inf`` where forbidden)."""
    logits = logits.float()
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    # shifted so that the largest logit is 0 before dividing, and the temperature no smaller than the
    # smallest normal float (1e-300 would round to 0 in float32): then no temperature, however small,
    # can overflow or give 0/0; the others go to -inf, which is greedy, the limit as it falls
    temperature = max(config.temperature, torch.finfo(logits.dtype).tiny)
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    if config.top_k and config.top_k < logits.shape[-1]:
        kth = torch.topk(logits, config.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if config.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above
        drop = before >= config.top_p
        drop[:, 0] = False  # the top token always stays, however small p is
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    # the draw of torch.multinomial(probs, 1): its one-sample path takes the argmax of p / q with
    # q ~ Exp(1) from the same generator (Gumbel-max), so the tokens are the same for a seed; without
    # its checks of probs (two host syncs and a dozen small ops a token: an eighth of a token's time
    # on one stream), which sample() makes once, on the prime's logits, instead
    q = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / q).argmax(dim=-1)


class NoiseDraws:
    """The narrow paths' draws: :func:`next_token`'s Gumbel-max, ``argmax(logits / T - log q)`` with
    ``q ~ Exp(1)``, taken as ``argmax(logits - T log q)`` (the same for T > 0, and no division that
    could overflow), its noise drawn from ``generator`` a block of tokens at a time: one call per block,
    not a dozen small ops per token. The same tokens for a seed, but not those of fp32's draws. For
    plain temperature sampling; :func:`next_token` keeps top-k, top-p and greedy."""

    def __init__(self, generator: torch.Generator, temperature: float) -> None:
        self.generator, self.temperature = generator, temperature
        self.noise: Tensor | None = None  # (R, B, V): T log q for the next R tokens
        self.used = 0

    def __call__(self, logits: Tensor) -> Tensor:
        noise = self.noise
        if noise is None or self.used == noise.shape[0] or noise.shape[1:] != logits.shape:
            rows = max(1, min(256, (1 << 20) // logits.numel()))  # at most 4 MB a block
            noise = torch.empty(rows, *logits.shape, device=logits.device)  # (R, B, V)
            self.noise = noise.exponential_(1, generator=self.generator).log_().mul_(self.temperature)
            self.used = 0
        self.used += 1
        return (logits - noise[self.used - 1]).argmax(dim=-1)


# -------------------------------------------------------------------------------------------------
# constraints


def is_han(ch: str) -> bool:
    """A CJK ideograph (the characters of a Chinese poem line)."""
    return len(ch) == 1 and unicodedata.name(ch, "").startswith("CJK UNIFIED IDEOGRAPH")


LINE_CHARS = (5, 7)


class PoemForm:
    """Classical form: ``lines`` lines of ``line_chars`` Chinese characters each, ``，`` after odd lines
    and ``。`` after even ones, a newline after each couplet; with ``acrostic``, line i starts with
    its i-th character. Tracks each of ``B`` streams separately.

    Args:
        vocab: the model's vocabulary (must hold the punctuation and the acrostic characters).
        line_chars: characters per line: 5 or 7, the classical forms (五言, 七言).
        lines: number of lines (4: 绝句, 8: 律诗); defaults to the acrostic's length, else 4.
        acrostic: the characters that open the lines (藏头诗).
    """

    def __init__(self, vocab: Vocabulary, line_chars: int = 5, lines: int | None = None, acrostic: str = ""):
        if vocab.kind != "char":
            raise UsageError("--line-chars/--acrostic: need a character vocabulary")
        if line_chars not in LINE_CHARS:
            raise UsageError(
                f"--line-chars: the classical forms have 5 or 7 characters a line (五言, 七言), not "
                f"{line_chars}"
            )
        lines = lines or (len(acrostic) if acrostic else 4)
        if lines < 1:
            raise UsageError(f"--lines: expected a positive number, got {lines}")
        if acrostic and len(acrostic) != lines:
            raise UsageError(f"--acrostic: {len(acrostic)} characters for {lines} lines")
        self.vocab, self.line_chars, self.lines = vocab, line_chars, lines
        size = len(vocab)
        self.han = torch.zeros(size, dtype=torch.bool)
        for i, token in enumerate(vocab.tokens):
            if i != vocab.unk_id and is_han(token):
                self.han[i] = True
        if not self.han.any():
            raise UsageError("--line-chars/--acrostic: the model's vocabulary has no Chinese characters")
        self.punct = []
        for mark in ("，", "。"):
            index = vocab.id_of(mark)
            if index is None:
                raise UsageError(f"--line-chars/--acrostic: the model's vocabulary lacks {mark!r}")
            self.punct.append(index)
        self.newline = vocab.id_of("\n")
        missing = [ch for ch in acrostic if vocab.id_of(ch) is None]
        if missing:
            raise UsageError(f"--acrostic: not in the model's vocabulary: {''.join(missing)}")
        self.heads = [i for i in map(vocab.id_of, acrostic) if i is not None]  # all of them: none missing
        # the token sequence of one poem, as a list of "slots"
        self.slots: list[tuple[str, int]] = []
        for line in range(lines):
            for position in range(line_chars):
                if position == 0 and self.heads:
                    self.slots.append(("fixed", self.heads[line]))
                else:
                    self.slots.append(("han", 0))
            self.slots.append(("fixed", self.punct[line % 2]))
            if line % 2 == 1 and line < lines - 1 and self.newline is not None:
                self.slots.append(("fixed", self.newline))
        self.position: Tensor | None = None

    @property
    def length(self) -> int:
        """Tokens in one poem."""
        return len(self.slots)

    def reset(self, batch: int) -> None:
        self.position = torch.zeros(batch, dtype=torch.long)

    def allowed_at(self, position: int) -> Tensor:
        """``(V,)`` bool: the tokens the poem's ``position``-th token may be."""
        kind, token = self.slots[min(position, len(self.slots) - 1)]
        if kind == "han":
            return self.han
        row = torch.zeros_like(self.han)
        row[token] = True
        return row

    def mask(self) -> Tensor:
        """``(B, V)`` bool: the tokens each stream may take next."""
        assert self.position is not None, "call reset() first"
        return torch.stack([self.allowed_at(pos) for pos in self.position.tolist()])

    def advance(self, tokens: Tensor) -> None:
        assert self.position is not None
        self.position += 1

    def finished(self) -> bool:
        return self.position is not None and bool((self.position >= len(self.slots)).all())


def apply_mask(logits: Tensor, allowed: Tensor | None, banned: Sequence[int]) -> Tensor:
    if banned:
        logits = logits.clone()
        logits[:, list(banned)] = float("-inf")
    if allowed is not None:
        logits = logits.masked_fill(~allowed.to(logits.device), float("-inf"))
    return logits


# -------------------------------------------------------------------------------------------------
# the step function of a precision


#: model -> {precision: (the weights' identity and versions, its stepper)}: a narrow stepper is built
#: once per set of weights (int8 takes a while to quantize), and rebuilt when they change
_STEPPERS: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[tuple, Stepper]]] = (
    weakref.WeakKeyDictionary()
)


def sampling_precision(precision: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``int8`` for ``precision`` on ``device``: ``auto`` is bf16 where the hardware
    computes it natively (:func:`rnnkit.train.hardware.resolve_precision` decides, and refuses an
    explicit bf16 where it is not native); int8 runs on the CPU only (PyTorch's dynamic int8 kernels)."""
    check_precision(precision)
    if precision == "fp32":
        return precision
    if precision == "int8":
        if device.type != "cpu":
            raise UsageError(
                f"--precision int8: PyTorch's int8 kernels run on the CPU only, not {device.type}"
            )
        return precision
    # the hardware's word on bf16 is the trainer's too: one place that reads the CPU flags
    from rnnkit.train import hardware

    return hardware.resolve_precision(precision, device)


def step_function(model, precision: str = "fp32") -> decode.Step:
    """What generation calls to advance one token, ``(ids (B,), state) -> (logits (B, V), state)``, for
    ``precision`` (see the module's notes): ``model.step`` for fp32, else the ``step`` of a
    :class:`rnnkit.nn.Stepper` whose recurrent matrices are stored in bf16 or int8, cached on the model
    until its weights change."""
    device = next(model.parameters()).device
    precision = sampling_precision(precision, device)
    if precision == "fp32":
        return model.step
    embedding, rnn, head = (getattr(model, name, None) for name in ("embedding", "rnn", "head"))
    if not (
        isinstance(embedding, nn.Embedding)
        and isinstance(rnn, Recurrent)
        and isinstance(head, nn.Linear)
        and rnn.num_directions == 1
    ):
        raise UsageError(
            f"--precision {precision}: only for embedding -> recurrent -> linear models (the char-RNN); "
            "use fp32"
        )
    key = tuple((p.data_ptr(), p._version) for p in model.parameters())
    cached = _STEPPERS.setdefault(model, {}).get(precision)
    if cached is None or cached[0] != key:
        try:
            stepper = Stepper(embedding, rnn, head, precision=precision)
        except RuntimeError as exc:  # a torch build without int8 kernels (no quantized engine)
            raise UsageError(f"--precision {precision}: not available in this PyTorch ({exc})") from None
        cached = (key, stepper)
        _STEPPERS[model][precision] = cached
    return cached[1].step


# -------------------------------------------------------------------------------------------------
# decoding loops


def _prime(model, prime: Sequence[int], batch: int, device: torch.device):
    ids = torch.tensor(list(prime), dtype=torch.long, device=device)[None].expand(batch, -1)  # (B, P)
    logits, state = model(ids)
    return logits[:, -1], state  # (B, V)


@torch.no_grad()
def sample(
    model,
    prime: Sequence[int],
    length: int,
    config: SamplingConfig,
    *,
    num_samples: int = 1,
    seed: int | None = None,
    form: PoemForm | None = None,
    banned: Sequence[int] = (),
    observe: Callable[[Tensor], object] | None = None,
    precision: str | None = None,
) -> Iterator[Tensor]:
    """Yield ``(num_samples,)`` next ids, one step at a time, ``length`` steps (fewer when a form ends).

    ``prime`` (at least one id) is read first; its ids are not yielded. ``banned`` ids are never
    chosen (the unknown token, typically). ``seed`` makes the stream reproducible. ``observe``, when
    given, is called with each step's ``(num_samples, V)`` logits (masked as the form and ``banned``
    require, before temperature) just before the token is picked from them. ``precision``: the
    weights' precision while writing (see the module's notes); ``None``: ``config.precision``.
    """
    if not prime:
        raise UsageError("the prime must hold at least one token")
    step = step_function(model, config.precision if precision is None else precision)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    pick: Callable[[Tensor], Tensor] = lambda logits: next_token(logits, config, generator)  # noqa: E731
    if step != model.step and config.temperature > 0 and not config.top_k and config.top_p == 1:
        pick = NoiseDraws(generator, config.temperature)  # a narrow path: its own, cheaper draws
    logits, state = _prime(model, prime, num_samples, device)
    if not bool(torch.isfinite(logits).all()):
        raise CheckpointError("the model's outputs are not finite (NaN or inf): its weights are broken")
    if form is not None:
        form.reset(num_samples)
        length = min(length, form.length) if length else form.length
    ban = None  # (V,) bool, made once: masked_fill writes what apply_mask's clone and assignment write
    if banned:
        ban = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        ban[list(banned)] = True
    advance: Callable[[Tensor], Tensor]
    stepper = getattr(step, "__self__", None)
    if isinstance(stepper, Stepper):  # a narrow path: streams that advance in place
        advance = stepper.stream(state, num_samples).advance
    else:

        def advance(token: Tensor) -> Tensor:
            nonlocal state
            logits, state = step(token, state)
            return logits

    for _ in range(length):
        if form is not None:
            logits = apply_mask(logits, form.mask(), ())
        if ban is not None:
            logits = logits.masked_fill(ban, float("-inf"))
        if observe is not None:
            observe(logits)
        token = pick(logits)
        yield token
        if form is not None:
            form.advance(token)
            if form.finished():
                return
        logits = advance(token)


@torch.no_grad()
def beam_search(
    model,
    prime: Sequence[int],
    length: int,
    beam_size: int,
    *,
    form: PoemForm | None = None,
    banned: Sequence[int] = (),
    precision: str = "fp32",
) -> list[int]:
    """The most likely continuation of ``prime`` found by beam search (sum of log-probabilities):
    :func:`rnnkit.decode.beam_search` over the model's step in ``precision`` (``model.step`` for fp32),
    the last prime token its start.

    With a ``form`` every beam obeys it, and the search ends when the form is complete. All beams have
    the same length, so no length normalisation is needed.
    """
    if beam_size < 1:
        raise UsageError(f"--beam: expected 1 or more, got {beam_size}")
    if not prime:
        raise UsageError("the prime must hold at least one token")
    step = step_function(model, precision)
    device = next(model.parameters()).device
    ids = torch.tensor(list(prime), dtype=torch.long, device=device)[None]  # (1, P)
    state = model(ids[:, :-1])[1] if ids.shape[1] > 1 else None
    if form is not None:
        length = form.length
    found = decode.beam_search(
        step, ids[:, -1], state, beam_size=beam_size, max_len=length, alpha=0.0,
        allowed=constraint(form, banned, model.vocab_size),
    )  # fmt: skip
    return found[0].tokens


def constraint(form: PoemForm | None, banned: Sequence[int], size: int) -> decode.Allowed | None:
    """The :data:`rnnkit.decode.Allowed` hook of a poem form and banned ids over ``size`` tokens
    (``None``: neither)."""
    if form is None and not banned:
        return None
    base = torch.ones(size, dtype=torch.bool)
    base[list(banned)] = False

    def allowed(position: int, prefix: Tensor) -> Tensor:
        return base if form is None else form.allowed_at(position) & base

    return allowed


# -------------------------------------------------------------------------------------------------
# text


@dataclass
class Piece:
    """One generated token and the text it adds."""

    text: str
    """A character; ``""`` in the middle of a byte-encoded character, or more than one character when a
    byte stream's decoder catches up. The last piece may be the decoder's flush (``token`` None)."""
    token: int | None
    logits: Tensor | None = None
    """``(V,)``: the logits the token was drawn from (masked as the form and the ban require), when
    asked for with ``logits=True`` (sampling only)."""


def prime_ids(vocab: Vocabulary, prime: str) -> list[int]:
    """The ids the model reads before it writes: ``prime``'s; for an empty prime, a line break when the
    vocabulary has one (a model trained on lines starts as at the top of a text), else its first token
    (id 0)."""
    ids = vocab.encode(prime).tolist()
    if ids:
        return ids
    newline = vocab.id_of("\n")
    return [newline if newline is not None else 0]


def generate_pieces(
    model,
    vocab: Vocabulary,
    prime: str,
    length: int,
    sampling: SamplingConfig,
    *,
    seed: int | None = None,
    form: PoemForm | None = None,
    stop: str | None = None,
    beam: int = 0,
    logits: bool = False,
    precision: str | None = None,
) -> Iterator[Piece]:
    """The text a model writes after ``prime``, one :class:`Piece` per token: what ``rnnkit sample``, the
    server and the samples printed during training all show.

    The model reads :func:`prime_ids` first (an empty prime: a line break); the prime is not repeated
    in the pieces. The unknown token is never written. ``length`` tokens are drawn by ``sampling``
    (``seed``: the same text every time), or, with ``beam`` > 0, the most likely continuation by
    :func:`beam_search`; a ``form`` writes a poem of its own length. The text ends right after the
    first ``stop``, if it comes; otherwise the last piece flushes a byte stream's incomplete character.
    ``precision`` (``fp32``, ``bf16``, ``int8`` or ``auto``; ``None``: ``sampling.precision``) is what
    the model's weights are read in while it writes (see the module's notes), for sampling and beam
    search alike; each gives the same text for the same seed every time. ``model`` must be in eval mode.
    """
    if precision is None:
        precision = sampling.precision
    ids = prime_ids(vocab, prime)
    banned = [vocab.unk_id] if vocab.unk_id is not None else []
    seen: list[Tensor] = []
    tokens: Iterator[int]
    if beam:
        tokens = iter(beam_search(model, ids, length, beam, form=form, banned=banned, precision=precision))
    else:
        observe = seen.append if logits else None
        stream = sample(
            model, ids, length, sampling, seed=seed, form=form, banned=banned, observe=observe,
            precision=precision,
        )  # fmt: skip
        tokens = (int(token[0]) for token in stream)
    decoder = vocab.decoder()
    carry = ""  # the last len(stop) - 1 characters written: a stop string may begin there
    for token in tokens:
        piece = Piece(decoder(token), token, seen.pop()[0] if seen else None)
        if stop:
            window = carry + piece.text
            at = window.find(stop)
            if at >= 0:
                piece.text = piece.text[: at + len(stop) - len(carry)]
                yield piece
                return
            carry = window[len(window) - len(stop) + 1 :]
        yield piece
    tail = decoder.flush()
    if tail:
        yield Piece(tail, None)
