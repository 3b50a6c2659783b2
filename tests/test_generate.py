import pytest
import torch

from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import UsageError
from rnnkit.generate import PoemForm, SamplingConfig, beam_search, next_token, sample
from rnnkit.tasks.lm import CharLM, ModelConfig

POEM_TEXT = (
    "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。\n"
)


def poem_model():
    vocab = Vocabulary.from_text(POEM_TEXT)
    torch.manual_seed(0)
    return CharLM(len(vocab), ModelConfig(embedding_size=8, hidden_size=16, num_layers=1)).eval(), vocab


def test_sampling_with_a_seed_is_reproducible():
    model, _vocab = poem_model()
    config = SamplingConfig(temperature=1.0, top_k=10)
    a = [t.tolist() for t in sample(model, [1, 2], 30, config, seed=5, num_samples=3)]
    b = [t.tolist() for t in sample(model, [1, 2], 30, config, seed=5, num_samples=3)]
    c = [t.tolist() for t in sample(model, [1, 2], 30, config, seed=6, num_samples=3)]
    assert a == b and a != c


def test_greedy_is_argmax_and_top_k_1_equals_greedy():
    model, _ = poem_model()
    greedy = [int(t) for t in sample(model, [3], 20, SamplingConfig(temperature=0))]
    top1 = [int(t) for t in sample(model, [3], 20, SamplingConfig(temperature=1.5, top_k=1), seed=1)]
    assert greedy == top1


def test_top_p_keeps_the_nucleus_only():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    picks = {int(next_token(logits, SamplingConfig(top_p=0.7), g)) for _ in range(300)}
    assert picks == {0, 1}
    picks = {int(next_token(logits, SamplingConfig(top_p=0.01), g)) for _ in range(50)}
    assert picks == {0}


def test_banned_tokens_never_appear():
    model, _ = poem_model()
    out = [int(t) for t in sample(model, [1], 200, SamplingConfig(temperature=2.0), seed=0, banned=[0, 4])]
    assert 0 not in out and 4 not in out


@pytest.mark.parametrize(("line_chars", "lines", "acrostic"), [(5, 4, ""), (7, 8, ""), (5, None, "春夏秋冬")])
def test_poem_form_is_obeyed_by_construction(line_chars, lines, acrostic):
    model, vocab = poem_model()
    vocab_chars = set(vocab.tokens)
    acrostic = "".join(ch for ch in acrostic if ch in vocab_chars) or ""
    if acrostic and len(acrostic) < 4:
        acrostic = "春夜花处"
    form = PoemForm(vocab, line_chars=line_chars, lines=lines, acrostic=acrostic)
    ids = [
        int(t[0])
        for t in sample(
            model, [vocab.id_of("\n")], 0, SamplingConfig(temperature=1.5), seed=2, form=form, banned=[0]
        )
    ]
    text = vocab.decode(ids)
    clauses = text.replace("\n", "").replace("。", "，").strip("，").split("，")
    expected_lines = lines or len(acrostic) or 4
    assert len(clauses) == expected_lines
    assert all(len(c) == line_chars for c in clauses)
    assert text.count("。") == expected_lines // 2
    if acrostic:
        assert [c[0] for c in clauses] == list(acrostic)


def test_beam_search_respects_form_and_beam_1_is_greedy():
    model, vocab = poem_model()
    form = PoemForm(vocab, line_chars=5, lines=4, acrostic="春夜花处")
    ids = beam_search(model, [vocab.id_of("\n")], 0, 3, form=form, banned=[0])
    text = vocab.decode(ids)
    assert [line[0] for line in text.replace("。", "，").replace("\n", "").strip("，").split("，")] == list(
        "春夜花处"
    )
    greedy = [int(t) for t in sample(model, [2], 15, SamplingConfig(temperature=0))]
    assert beam_search(model, [2], 15, 1) == greedy


def test_acrostic_characters_must_be_in_vocabulary():
    _, vocab = poem_model()
    with pytest.raises(UsageError, match="not in the model's vocabulary: 龘"):
        PoemForm(vocab, acrostic="春夜花龘")
