"""rnnkit.decode: its greedy and batched beam search equal the one-item decoders they replaced
(tests/reference_beam.py) for the char-RNN, the captioner and the speech recogniser, in tokens and in
scores, for beam sizes 1 to 4, with and without length normalisation."""

from __future__ import annotations

import pytest
import torch
from tests.reference_beam import (
    caption_beam,
    caption_greedy,
    char_rnn_beam,
    speech_beam,
    speech_greedy,
)

from rnnkit import decode
from rnnkit.data.vocab import END_ID, START_ID, Vocabulary
from rnnkit.generate import PoemForm, SamplingConfig, beam_search, constraint, sample
from rnnkit.nn import LSTMState
from rnnkit.tasks.caption import Captioner, CaptionModelConfig
from rnnkit.tasks.lm import CharLM, ModelConfig
from rnnkit.tasks.speech.config import SpeechModelConfig
from rnnkit.tasks.speech.model import ListenAttendSpell

POEM = (
    "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。\n"
)


def sharpen(head: torch.nn.Linear, scale: float, end_bias: float = 0.0, end_scale: float = 1.0) -> None:
    """Peaky next-token distributions, so that beams part ways with greedy (a fresh model's are nearly
    uniform), and ``<end>`` now and then, more or less likely with the state (``end_scale``)."""
    with torch.no_grad():
        head.weight.mul_(scale)
        head.weight[END_ID] *= end_scale
        head.bias[END_ID] += end_bias


# -------------------------------------------------------------------------------------------------
# the char-RNN


def char_model(cell: str = "lstm"):
    vocab = Vocabulary.from_text(POEM + "the cat sat.")
    torch.manual_seed(0)
    model = CharLM(len(vocab), ModelConfig(embedding_size=8, hidden_size=16, num_layers=2, cell=cell)).eval()
    sharpen(model.head, 6.0)
    return model, vocab


def char_search(model, primes: list[list[int]], length, beam, *, form=None, banned=()):
    """decode.beam_search as generate.beam_search calls it, for several primes of one length at once."""
    ids = torch.tensor(primes)  # (B, P)
    state = model(ids[:, :-1])[1] if ids.shape[1] > 1 else None
    allowed = constraint(form, banned, model.vocab_size)
    return decode.beam_search(model.step, ids[:, -1], state, beam_size=beam, max_len=length, alpha=0.0,
                              allowed=allowed)  # fmt: skip


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("beam", [1, 2, 3, 4])
def test_char_rnn_beam_equals_the_one_item_search(cell, beam):
    model, vocab = char_model(cell)
    primes = [vocab.encode(p).tolist() for p in ("床前", "the", "低头", "t\n")]
    primes = [p[:2] for p in primes]
    together = char_search(model, primes, 12, beam, banned=[0])
    for prime, found in zip(primes, together, strict=True):
        ids, score = char_rnn_beam(model, prime, 12, beam, banned=[0])
        assert found.tokens == ids == beam_search(model, prime, 12, beam, banned=[0])
        assert found.score == pytest.approx(score, rel=1e-5, abs=1e-5)
    one = [vocab.encode("月").tolist()]  # a one-token prime: the state starts empty
    assert char_search(model, one, 9, beam)[0].tokens == char_rnn_beam(model, one[0], 9, beam)[0]


@pytest.mark.parametrize("beam", [1, 2, 3, 4])
@pytest.mark.parametrize("acrostic", ["", "春夜花处"])
def test_char_rnn_beam_keeps_the_poem_form_as_before(beam, acrostic):
    model, vocab = char_model()
    newline = [vocab.id_of("\n")]
    form = PoemForm(vocab, line_chars=5, lines=4, acrostic=acrostic)
    found = char_search(model, [newline], form.length, beam, form=form, banned=[0])[0]
    ids, score = char_rnn_beam(model, newline, 0, beam, form=PoemForm(vocab, 5, 4, acrostic), banned=[0])
    assert found.tokens == ids == beam_search(model, newline, 0, beam, form=form, banned=[0])
    assert len(ids) == form.length and found.score == pytest.approx(score, rel=1e-5)


def test_char_rnn_greedy_is_the_temperature_0_sample_and_the_beam_of_one():
    model, vocab = char_model()
    prime = vocab.encode("春").tolist()
    sampled = [int(t) for t in sample(model, prime, 20, SamplingConfig(temperature=0), banned=[0])]
    start = torch.tensor(prime)
    assert (
        decode.greedy(model.step, start, max_len=20, allowed=constraint(None, [0], len(vocab)))[0] == sampled
    )
    assert char_rnn_beam(model, prime, 20, 1, banned=[0])[0] == sampled


# -------------------------------------------------------------------------------------------------
# the captioner


def caption_model(vocab: int = 11) -> Captioner:
    torch.manual_seed(0)
    config = CaptionModelConfig(embedding_size=8, hidden_size=16, image_size=32, cnn_width=4,
                                image_feature_size=6, dropout=0.0)  # fmt: skip
    model = Captioner(vocab, config).eval()
    sharpen(model.head, 5.0, end_bias=0.5)
    # a picture vector that differs from picture to picture (an untrained CNN's barely does)
    model.features = lambda images: images.flatten(1)[:, : config.image_feature_size].float() / 32 - 4
    return model


def pictures(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("beam", [1, 2, 3, 4])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("max_words", [1, 8])
def test_captioner_beams_equal_one_picture_at_a_time(beam, alpha, max_words):
    model, images = caption_model(), pictures(6, seed=beam)
    v = model.features(images)
    start = torch.full((6,), START_ID)
    found = decode.beam_search(model.step_of(v.repeat_interleave(beam, 0)), start, beam_size=beam,
                               max_len=max_words + 1, end_id=END_ID, alpha=alpha)  # fmt: skip
    alone = [caption_beam(model, images[i : i + 1], beam, max_words, alpha) for i in range(6)]
    assert [h.tokens for h in found] == [ids for ids, _ in alone]
    assert [h.score for h in found] == pytest.approx([s for _, s in alone], rel=1e-5, abs=1e-6)
    assert model.beams(images, beam, max_words, alpha) == [ids for ids, _ in alone]
    if max_words > 1:  # captions that ended at different steps, in the same batch
        assert len({len(ids) for ids, _ in alone}) > 1


def test_captioner_greedy_equals_one_picture_at_a_time():
    model, images = caption_model(), pictures(8, seed=0)
    greedy = model.greedy(images, max_words=8)
    assert greedy == [caption_greedy(model, images[i : i + 1], 8) for i in range(8)]
    assert greedy == [caption_beam(model, images[i : i + 1], 1, 8)[0] for i in range(8)]
    assert len({len(ids) for ids in greedy}) > 1


# -------------------------------------------------------------------------------------------------
# the speech recogniser


def speech_model(cell: str = "lstm") -> ListenAttendSpell:
    torch.manual_seed(0)
    config = SpeechModelConfig(cell=cell, listener_size=8, pyramid_layers=2, speller_size=16,
                               embedding_size=8, attention_size=8, dropout=0.0)  # fmt: skip
    model = ListenAttendSpell(6, 10, config).eval()
    sharpen(model.speller.out[-1], 4.0, end_bias=-1.0, end_scale=6.0)
    with torch.no_grad():
        model.speller.embedding.weight.mul_(3.0)  # each character depends on the ones before it
    return model


def utterances(seed: int):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([13, 8, 16, 5, 11])
    x = torch.randn(5, 16, 6, generator=g) * 2
    return x * (torch.arange(16)[None, :, None] < lengths[:, None, None]), lengths


@pytest.mark.parametrize("beam", [1, 2, 3, 4])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("max_chars", [1, 7])
def test_speech_beams_equal_one_utterance_at_a_time(beam, alpha, max_chars):
    model = speech_model()
    x, lengths = utterances(seed=beam)
    memory, _, mask, keys = model.listen(x, lengths)
    start = torch.full((5,), START_ID)
    step = model.step_of(*(t.repeat_interleave(beam, 0) for t in (memory, keys, mask)))
    found = decode.beam_search(step, start, model.speller.start(memory), beam_size=beam,
                               max_len=max_chars + 1, end_id=END_ID, alpha=alpha,
                               select=decode.take_rows)  # fmt: skip
    alone = [
        speech_beam(model, x[j : j + 1, :n], int(n), beam, max_chars, alpha) for j, n in enumerate(lengths)
    ]
    assert [h.tokens for h in found] == [ids for ids, _ in alone]
    assert [h.score for h in found] == pytest.approx([s for _, s in alone], rel=1e-5, abs=1e-6)
    assert model.beams(x, lengths, beam, max_chars, alpha) == [ids for ids, _ in alone]
    if max_chars > 1:
        assert len({len(ids) for ids, _ in alone}) > 1


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_speech_greedy_equals_one_utterance_at_a_time(cell):
    model = speech_model(cell)
    x, lengths = utterances(seed=0)
    ids, maps = model.greedy(x, lengths, max_chars=7)
    assert ids == [speech_greedy(model, x[j : j + 1, :n], int(n), 7) for j, n in enumerate(lengths)]
    assert ids == [speech_beam(model, x[j : j + 1, :n], int(n), 1, 7)[0] for j, n in enumerate(lengths)]
    for row, weights in zip(ids, maps, strict=True):  # a row for each output, </s> included if it came
        assert weights.shape[0] == min(len(row) + 1, 7 + 1)
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[0]))


# -------------------------------------------------------------------------------------------------
# the search itself


def test_take_follows_tuples_named_tuples_and_none():
    h = torch.arange(12.0).view(1, 6, 2)
    state = (LSTMState(h, h + 100), [h * 2])
    index = torch.tensor([5, 0])
    picked = decode.take(state, index)
    assert isinstance(picked, tuple) and isinstance(picked[0], LSTMState) and isinstance(picked[1], list)
    assert picked[0].c[0, :, 0].tolist() == [110.0, 100.0] and picked[1][0][0, :, 0].tolist() == [20.0, 0.0]
    assert decode.take_rows(h[0], index).tolist() == [[10.0, 11.0], [0.0, 1.0]]
    assert decode.take(None, index) is None


def test_a_mask_hook_bans_ids_in_greedy_and_beam():
    model, vocab = char_model()
    start = torch.tensor(vocab.encode("春").tolist())
    banned = set(decode.greedy(model.step, start, max_len=15)[0][:3])
    allowed = constraint(None, sorted(banned), len(vocab))
    assert not banned & set(decode.greedy(model.step, start, max_len=15, allowed=allowed)[0])
    found = decode.beam_search(model.step, start, beam_size=3, max_len=15, alpha=0.0, allowed=allowed)
    assert not banned & set(found[0].tokens)
    with pytest.raises(ValueError, match="beam_size"):
        decode.beam_search(model.step, start, beam_size=0, max_len=3)
