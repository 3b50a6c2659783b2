import logging

import pytest
import torch
from fastapi.testclient import TestClient

from rnnkit.cli import main
from rnnkit.config import to_dict
from rnnkit.data.corpus import encode_corpus, resolve_sources
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import UsageError
from rnnkit.generate import (
    PoemForm,
    SamplingConfig,
    beam_search,
    generate_pieces,
    next_token,
    prime_ids,
    sample,
)
from rnnkit.serve import ServeConfig, create_app
from rnnkit.tasks.lm import CharLM, LMTask, ModelConfig, get_preset, load_lm
from rnnkit.train import checkpoint as ckpt

POEM_TEXT = (
    "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。\n"
    "夏木秋山冬雪，\n"  # the acrostic's 夏, 秋 and 冬
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
    assert set(acrostic) <= set(vocab.tokens)  # the test writes the acrostic it names
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


# -------------------------------------------------------------------------------------------------
# one text generator: rnnkit sample, the server and the training samples write the same text

ENGLISH = "the cat sat on a mat and dog ran far away home.\n" * 3 + "ABC xyz, q! 'j'? (k)\n"
POEM = (
    "春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n"
)


def lm_config(sample_length: int = 60):
    config = get_preset("tiny")
    config.model.embedding_size, config.model.hidden_size, config.model.num_layers = 16, 32, 1
    config.train.sample_length, config.train.seed = sample_length, 0
    return config


def random_run(folder, vocab: Vocabulary, seed: int):
    """A run folder holding an untrained model (its weights follow from the seed alone, the same on any
    machine) with peaky next-character distributions."""
    config = lm_config()
    torch.manual_seed(seed)
    model = CharLM(len(vocab), config.model)
    with torch.no_grad():
        model.head.weight.mul_(8.0)
    saved = {
        "format_version": ckpt.FORMAT_VERSION,
        "task": "lm",
        "config": to_dict(config),
        "vocab": vocab.to_dict(),
    }
    ckpt.save_checkpoint(folder, 0, model_state=model.state_dict(), config=saved, state_tensors={},
                         trainer_state={}, best=True)  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("generate")
    source = tmp / "text.txt"
    source.write_text((ENGLISH + POEM) * 8, encoding="utf-8")
    corpus = encode_corpus(resolve_sources([str(source)]), tmp / "enc", val_fraction=0.1)
    runs = {
        "char": random_run(tmp / "char", corpus.vocab, 0),
        "byte": random_run(tmp / "byte", Vocabulary.bytes(), 1),
    }
    return runs, corpus


@pytest.fixture(scope="module")
def client(runs):
    served = [f"{name}={path}" for name, path in runs[0].items()]
    with TestClient(create_app(ServeConfig(runs=served)), base_url="http://127.0.0.1") as c:
        yield c


# The texts the code gave BEFORE the generator was shared (recorded once with the old `rnnkit sample`,
# server and training-sample code, for these seeds on these seeded models): the server's text, or the
# CLI's without its prime and final newline where the server has no such option (beam). "empty" and
# "byte_empty" are the server's: the old `rnnkit sample --prime ''` refused, and the training samples
# started from id 0; now all three start from a line break.
BEFORE = {
    "the": "闻，风C，春霜啼光nzn'声yo风AACx举j!举处少花举.。上q晓，鸟o.hy\n不xt头\n"
    "上月(眠B.'??'明An春光g?月B上z知多多明明r处s霜?少风(",
    "stop": "望t风光.",
    "empty": "处d)地C举?疑风风，a啼(A落明(低'A'nyg少月of知霜霜x鸟低夜地觉声a",
    "newline": "望ta光.'erA疑s,故mz床w'晓啼床明'Am望g?ho风。 头C啼ns落myr处k'f月A思月上Cm低雨上举举乡疑",
    "acrostic": "春处不光明，夜疑来疑少。",
    "topk": ".月光'前m?'Bnn疑上觉上n觉风头多B落前觉?光风上'AnyAyAynn疑上nn觉风头风q，"
    "疑nn风觉不觉风上光'mm明月风C明疑明风A",
    "byte": "k\ufffd\ufffd7\ufffd\ufffd~`{L\ufffd\ufffd!\u0166B\ufffdoRt\ufffdq\ufffd.l?\ufffd\x1au:"
    "\ufffd\ufffd\x01\x0c\x1bS\x1d\ufffd\x15ZK\ufffd~]\x05\x0b\ufffd\ufffd\x13",
    "byte_empty": "\ufffd\x1e\x15\ufffd\t\ufffd\x13\ufffd\x13N\ufffdQ\ufffdN\x11N\ufffd\ufffd\x017"
    "\ufffd`Euh\x10\ufffd\ufffd9",
    # the last \ufffd: the decoder's flush of an unfinished character
    "byte_flush": "^>\u065d\ufffda\ufffd\ufffdY\r\ufffd\ufffd",
    "beam": "AAyAnnnn觉多风aaaaa疑nn风aaa疑nn风aa疑",
    "beam_stop": "AAyAnnn觉多B觉上头nn觉风多a",
    "acrostic_beam": "春处不多落，夜地地地地。",
}
CASES = {
    "the": {"prime": "the ", "length": 80, "seed": 3},
    "stop": {"prime": "the", "length": 300, "seed": 0, "stop": "."},
    "empty": {"prime": "", "length": 40, "seed": 5},
    "newline": {"prime": "\n", "length": 60, "seed": 0},
    "acrostic": {"acrostic": "春夜", "line_chars": 5, "seed": 0},
    "topk": {"prime": "a", "length": 70, "seed": 11, "temperature": 1.2, "top_k": 5, "top_p": 0.9},
    "byte": {"model": "byte", "prime": "猫", "length": 50, "seed": 2, "temperature": 1.0},
    "byte_empty": {"model": "byte", "prime": "", "length": 30, "seed": 4},
    "byte_flush": {"model": "byte", "prime": "\n", "length": 12, "seed": 8, "temperature": 1.0},
    "beam": {"prime": "the ", "length": 30, "beam": 3},
    "beam_stop": {"prime": "the ", "length": 60, "beam": 2, "stop": "a"},
    "acrostic_beam": {"acrostic": "春夜", "line_chars": 5, "beam": 3},
}


def pieces_of(runs, case: dict):
    loaded = load_lm(runs[0][case.get("model", "char")])
    sampling = SamplingConfig(temperature=case.get("temperature", 0.8), top_k=case.get("top_k", 0),
                              top_p=case.get("top_p", 1.0))  # fmt: skip
    form = (
        PoemForm(loaded.vocab, case["line_chars"], acrostic=case["acrostic"]) if "acrostic" in case else None
    )
    prime, length = case.get("prime", "\n"), case.get("length", 500)
    return list(
        generate_pieces(loaded.model, loaded.vocab, prime, length, sampling, seed=case.get("seed"), form=form,
                        stop=case.get("stop"), beam=case.get("beam", 0))
    )  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_the_cli_and_the_server_write_the_generators_text_as_before(name, runs, client, capsys):
    case = CASES[name]
    text = "".join(p.text for p in pieces_of(runs, case))
    assert text == BEFORE[name]
    args = ["sample", str(runs[0][case.get("model", "char")])]
    args += [f"--{k.replace('_', '-')}={v}" for k, v in case.items() if k != "model"]
    assert main(args) == 0
    prime = "" if "acrostic" in case else case.get("prime", "\n")
    assert capsys.readouterr().out == prime + text + "\n"
    if "beam" not in case:  # the server does not beam-search
        served = client.post("/v1/generate", json=case).json()
        assert served["text"] == text and served["tokens"] == len(pieces_of(runs, case))


def test_the_training_sample_is_the_generators_text_as_before(runs, caplog):
    run, corpus = runs[0]["char"], runs[1]
    task = LMTask(lm_config(sample_length=60), corpus)
    model = load_lm(run).model.train()
    assert task.sample_text(model) == BEFORE["newline"] and model.training  # back in training mode
    with caplog.at_level(logging.INFO, logger="rnnkit"):
        task.on_evaluate(model.eval(), step=7)
    assert f"sample at step 7:\n{BEFORE['newline']}" in caplog.text


def test_an_empty_prime_starts_from_a_line_break_else_the_first_token():
    assert prime_ids(Vocabulary.from_text("ab\nc"), "") == [Vocabulary.from_text("ab\nc").id_of("\n")]
    assert prime_ids(Vocabulary.from_text("abc"), "") == [0]
    assert prime_ids(Vocabulary.bytes(), "") == [10]
    assert prime_ids(Vocabulary.from_text("abc"), "ca") == Vocabulary.from_text("abc").encode("ca").tolist()


def test_the_text_ends_right_after_the_first_stop_even_inside_a_piece(runs):
    case = CASES["byte_flush"]
    pieces = pieces_of(runs, case)
    whole = "".join(p.text for p in pieces)
    assert any(len(p.text) > 1 for p in pieces)  # the byte decoder caught up: two characters at once
    for stop in ("\ufffd", "a", "\ufffdY", "\ufffd\ufffd", "Y", "\r\ufffd\ufffd"):
        text = "".join(p.text for p in pieces_of(runs, case | {"stop": stop}))
        assert text == whole[: whole.index(stop) + len(stop)]
    assert pieces[-1].token is None and pieces[-1].text == "\ufffd"  # the flush, a piece of its own
    assert "".join(p.text for p in pieces_of(runs, case | {"stop": "never"})) == whole


def test_pieces_carry_their_token_and_on_request_the_logits(runs):
    loaded = load_lm(runs[0]["char"])
    config = SamplingConfig(temperature=0)
    pieces = list(generate_pieces(loaded.model, loaded.vocab, "the", 10, config, logits=True))
    assert [p.text for p in pieces] == [loaded.vocab.tokens[p.token] for p in pieces]
    assert all(p.logits is not None and int(p.logits.argmax()) == p.token for p in pieces)
    assert all(p.logits is None for p in generate_pieces(loaded.model, loaded.vocab, "the", 10, config))
