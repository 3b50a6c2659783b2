"""ONNX export (``rnnkit.export``, ``rnnkit export``): the char-RNN's one-step function and the classifier
give onnxruntime the outputs PyTorch gives, on batches of several sizes and lengths and for every cell;
text generated through onnxruntime's step equals ``rnnkit sample``'s for the same seed; ``export.json``
holds what a user needs to feed the files; a run of another task is a one-line error."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re

import numpy as np
import onnxruntime
import pytest
import torch
from tests.helpers import run_cli, seasonal_csv, sentiment_file, text_corpus

from rnnkit.cli import main
from rnnkit.data.table import TEXT_SPECIALS
from rnnkit.data.vocab import TokenTable, Vocabulary
from rnnkit.export import OnnxCharLM, export_classifier, export_lm_step, read_meta
from rnnkit.nn import LSTMState
from rnnkit.tasks import load_run
from rnnkit.tasks.classify.config import ClassifierConfig, ClassifierModelConfig
from rnnkit.tasks.classify.data import TextInputs
from rnnkit.tasks.classify.model import SequenceClassifier
from rnnkit.tasks.classify.task import LoadedClassifier
from rnnkit.tasks.lm import LMConfig
from rnnkit.tasks.lm.config import ModelConfig
from rnnkit.tasks.lm.model import CharLM
from rnnkit.tasks.lm.task import LoadedLM

CPU = ["--device", "cpu", "--quiet"]
TOL = 1e-4


def session(folder) -> onnxruntime.InferenceSession:
    info = read_meta(folder, json.loads((folder / "export.json").read_text())["task"])
    return onnxruntime.InferenceSession(str(folder / info["model"]), providers=["CPUExecutionProvider"])


# -------------------------------------------------------------------------------------------------
# the char-RNN


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A tiny trained char-RNN of two LSTM layers, exported through the command line."""
    tmp = tmp_path_factory.mktemp("onnx-lm")
    source = text_corpus(tmp / "t.txt", 12_000)
    args = ["train", source, "--out", tmp / "run", "--preset", "tiny", "--num-layers", "2", *CPU]
    args += ["--precision", "fp32", "--max-steps", "30", "--sample-length", "0"]
    assert main([str(a) for a in args]) == 0
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["export", str(tmp / "run"), "--format", "onnx", "--out", str(tmp / "onnx")])
    assert code == 0 and err.getvalue() == ""  # the exporter's own chatter stays out of the terminal
    size = len(Vocabulary.from_text(source.read_text()))
    assert out.getvalue().splitlines() == [
        f"wrote {tmp / 'onnx' / 'step.onnx'} (ids (N,), h (2, N, 32), c (2, N, 32) -> logits (N, {size}), "
        "h_out (2, N, 32), c_out (2, N, 32))",
        f"wrote {tmp / 'onnx' / 'export.json'}",
    ]
    return tmp / "run", tmp / "onnx"


def random_state(layers: int, batch: int, hidden: int, lstm: bool):
    h = torch.randn(layers, batch, hidden) * 0.5
    return LSTMState(h, torch.randn(layers, batch, hidden)) if lstm else h


def parts(state) -> list[np.ndarray]:
    return [t.numpy() for t in (state if isinstance(state, LSTMState) else (state,))]


def check_step(model: CharLM, folder, batches=(1, 3, 8)) -> None:
    """onnxruntime's step equals the model's (the plain pass and the stepper) from random states, and
    stepping it over sequences equals the model's pass over the whole sequence."""
    ort = session(folder)
    names = [i.name for i in ort.get_inputs()]
    lstm = model.rnn.is_lstm
    assert names == (["ids", "h", "c"] if lstm else ["ids", "h"])
    layers, hidden, vocab = model.rnn.num_layers, model.rnn.hidden_size, model.vocab_size
    for batch in batches:
        ids = torch.randint(0, vocab, (batch,))
        state = random_state(layers, batch, hidden, lstm)
        got = ort.run(None, dict(zip(names, [ids.numpy(), *parts(state)], strict=True)))
        with torch.no_grad():
            for fast in (False, True):
                logits, new = model.step(ids, state, fast=fast)
                assert got[0].shape == (batch, vocab)
                np.testing.assert_allclose(got[0], logits.numpy(), atol=TOL, rtol=0)
                for mine, theirs in zip(got[1:], parts(new), strict=True):
                    np.testing.assert_allclose(mine, theirs, atol=TOL, rtol=0)
    for batch, length in ((2, 1), (3, 6), (5, 17)):
        ids = torch.randint(0, vocab, (batch, length))
        with torch.no_grad():
            expected, final = model(ids)
        state = [np.zeros((layers, batch, hidden), np.float32) for _ in names[1:]]
        for t in range(length):
            logits, *state = ort.run(None, dict(zip(names, [ids[:, t].numpy(), *state], strict=True)))
            np.testing.assert_allclose(logits, expected[:, t].numpy(), atol=TOL, rtol=0)
        for mine, theirs in zip(state, parts(final), strict=True):
            np.testing.assert_allclose(mine, theirs, atol=TOL, rtol=0)


def test_lm_step_export_equals_pytorch_and_describes_itself(lm_run):
    run, folder = lm_run
    loaded = load_run(run)
    check_step(loaded.model, folder)
    info = read_meta(folder, "lm")
    assert sorted(p.name for p in folder.iterdir()) == ["export.json", "step.onnx"]
    assert info["cell"] == "lstm" and info["num_layers"] == 2 and info["hidden_size"] == 32
    assert info["state"] == ["h", "c"] and info["state_shape"] == [2, "N", 32]
    assert info["vocab"]["tokens"] == loaded.vocab.tokens and info["vocab"]["unk_id"] == 0
    assert info["empty_prime_id"] == loaded.vocab.id_of("\n")
    assert [o["name"] for o in info["outputs"]] == ["logits", "h_out", "c_out"]
    ort = session(folder)  # the batch axis is symbolic, not the example's size
    assert [str(d) for d in ort.get_inputs()[1].shape] == ["2", "batch", "32"]


@pytest.mark.parametrize("cell, layers", [("gru", 2), ("rnn", 1)])
def test_every_cell_exports_its_step(cell, layers, tmp_path):
    vocab = Vocabulary.from_text("the cat sat on the mat.\n")
    config = ModelConfig(cell=cell, embedding_size=8, hidden_size=12, num_layers=layers)
    model = CharLM(len(vocab), config).eval()
    export_lm_step(LoadedLM(model, vocab, LMConfig(), "made"), tmp_path)
    assert read_meta(tmp_path, "lm")["state"] == ["h"]
    check_step(model, tmp_path)


def test_onnxruntime_writes_the_text_rnnkit_sample_writes(lm_run, capsys):
    run, folder = lm_run
    lm = OnnxCharLM(folder)
    texts = []
    for prime, seed, temperature, more in (("\n", 3, 0.8, []), ("the ", 11, 1.3, ["--top-k", "5"])):
        args = [
            "sample",
            run,
            "--prime",
            prime,
            "--length",
            200,
            "--seed",
            seed,
            "--temperature",
            temperature,
        ]
        code, out, err = run_cli(capsys, *args, *more)
        assert code == 0, err
        top_k = int(more[1]) if more else 0
        text = lm.generate(prime, 200, temperature=temperature, top_k=top_k, seed=seed)
        assert len(text) == 200 and out == prime + text + "\n"
        texts.append(text)
    assert lm.generate("\n", 200, temperature=0.8, seed=4) != texts[0]  # the seed does choose the text


# -------------------------------------------------------------------------------------------------
# the classifier


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory):
    """A tiny trained word-level BiLSTM classifier, exported through the command line."""
    tmp = tmp_path_factory.mktemp("onnx-classify")
    args = ["classify", "train", str(sentiment_file(tmp / "s.tsv", rows=200)), "--text-column", "sentence"]
    args += ["--label-column", "label", "--out", str(tmp / "run"), "--max-steps", "20", "--max-minutes", "0"]
    args += ["--eval-interval", "10", "--hidden-size", "16", "--embedding-size", "16", "--batch-size", "16"]
    assert main([*args, *CPU, "--set", "train.precision=fp32"]) == 0
    assert main(["export", str(tmp / "run"), "--out", str(tmp / "onnx")]) == 0
    return tmp / "run", tmp / "onnx"


def check_classifier(model: SequenceClassifier, folder, vocab: int, bigrams: int = 0) -> None:
    """onnxruntime's probabilities equal the model's on random padded batches of several shapes."""
    ort = session(folder)
    for batch, length in ((1, 1), (2, 7), (5, 3), (9, 16)):
        lengths = torch.randint(1, length + 1, (batch,))
        lengths[batch // 2] = length
        real = torch.arange(length + 1)[None, :] < lengths[:, None]  # (N, T + 1)
        ids = torch.randint(2, vocab, (batch, length)) * real[:, :-1]  # padding 0
        feed = {"ids": ids.numpy(), "lengths": lengths.numpy()}
        pairs = None
        if bigrams:
            pairs = torch.randint(2, bigrams, (batch, length + 1)) * (
                torch.arange(length + 1) <= lengths[:, None]
            )
            feed["bigrams"] = pairs.numpy()
        with torch.no_grad():
            expected = torch.softmax(model(ids, lengths, pairs), dim=-1)
        got = ort.run(None, feed)[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected.numpy(), atol=TOL, rtol=0)


def encode_from_meta(info: dict, text: str) -> tuple[list[int], list[int] | None]:
    """A text's ids (and bigram ids) by export.json alone, as its notes say: what a user without rnnkit
    does."""
    if info["tokens"] == "char":
        tokens = [ch for ch in text if not ch.isspace()]
    else:
        tokens = re.findall(info["word_pattern"], text.lower())
    tokens = tokens[: info["max_tokens"]]
    index = {t: i for i, t in enumerate(info["vocab"])}
    ids = [index.get(t, info["unk_id"]) for t in tokens]
    if info["bigrams"] is None:
        return ids, None
    b = info["bigrams"]
    edges = [b["boundary"], *tokens, b["boundary"]]
    table = {t: i for i, t in enumerate(b["tokens"])}
    return ids, [table.get(x + b["join"] + y, info["unk_id"]) for x, y in itertools.pairwise(edges)]


def test_classifier_export_equals_pytorch_and_rnnkit_predict(classify_run):
    run, folder = classify_run
    loaded = load_run(run)
    check_classifier(loaded.model, folder, len(loaded.inputs.vocab))
    info = read_meta(folder, "classify")
    assert info["labels"] == loaded.labels == ["0", "1"] and info["tokens"] == "word"
    assert info["pad_id"] == 0 and info["unk_id"] == 1 and info["bigrams"] is None
    texts = ["a really lovely story", "the plot was awful , really", "zzz unseen words here"]
    encoded = [encode_from_meta(info, t)[0] for t in texts]
    assert encoded == loaded.encode(texts).ids  # export.json is enough to feed the file
    width = max(map(len, encoded))
    ids = np.array([row + [info["pad_id"]] * (width - len(row)) for row in encoded], np.int64)
    lengths = np.array([len(row) for row in encoded], np.int64)
    probs = session(folder).run(None, {"ids": ids, "lengths": lengths})[0]
    np.testing.assert_allclose(probs, loaded.predict(texts).numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize(
    "cell, bidirectional, layers, pool, bigram_size",
    [("gru", True, 2, "concat", 4), ("rnn", False, 2, "max", 0), ("rnn", True, 1, "mean", 0)],
)
def test_every_cell_and_pooling_exports(cell, bidirectional, layers, pool, bigram_size, tmp_path):
    vocab = TokenTable(["<pad>", "<unk>", *"不错好差很一般"], TEXT_SPECIALS)
    pairs = None
    if bigram_size:
        keys = ["\u2402\t不", "不\t错", "错\t\u2402", "很\t好", "好\t\u2402"]
        pairs = TokenTable(["<pad>", "<unk>", *keys], TEXT_SPECIALS)
    inputs = TextInputs(vocab, "char", 64, pairs)
    config = ClassifierModelConfig(
        cell=cell, embedding_size=8, hidden_size=12, num_layers=layers, bidirectional=bidirectional,
        pool=pool, bigram_size=bigram_size, dropout=0.0,
    )  # fmt: skip
    model = SequenceClassifier(len(vocab), 3, config, len(pairs.tokens) if pairs else 0).eval()
    export_classifier(LoadedClassifier(model, inputs, ["a", "b", "c"], ClassifierConfig(), "made"), tmp_path)
    check_classifier(model, tmp_path, len(vocab), len(pairs.tokens) if pairs else 0)
    info = read_meta(tmp_path, "classify")
    texts = ["不错", "很 好，一般", "差"]
    got = [encode_from_meta(info, t) for t in texts]
    encoded = inputs.encode(texts)
    assert [ids for ids, _ in got] == encoded.ids
    assert [b for _, b in got] == (encoded.bigrams if pairs else [None] * 3)


# -------------------------------------------------------------------------------------------------
# errors


def test_other_tasks_existing_files_and_formats_are_one_line_errors(lm_run, tmp_path, capsys):
    csv = seasonal_csv(tmp_path / "air.csv", months=60)
    args = ["forecast", "train", str(csv), "--column", "Passengers", "--out", str(tmp_path / "air")]
    assert main([*args, "--window", "6", "--max-steps", "4", "--eval-interval", "2", *CPU]) == 0
    capsys.readouterr()
    run, folder = lm_run
    cases = [
        (["export", tmp_path / "air", "--out", tmp_path / "x"], "export supports lm and classify for now"),
        (["export", run, "--out", folder], "already holds step.onnx and export.json; pass --force"),
        (["export", run, "--format", "tflite", "--out", tmp_path / "y"], "--format: expected one of onnx"),
    ]
    for args, message in cases:
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and err.startswith("rnnkit: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
