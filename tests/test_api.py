"""The Python API (issue #19): ``rnnkit.load(run)`` gives every task's loaded model its typed methods,
and they answer what the lower-level paths (the ones the CLI and the evaluations use) answer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers import served_run
from tests.task_runs import (
    a_png,
    a_wav,
    caption_run,
    classify_run,
    entity_run,
    forecast_run,
    segment_run,
    speech_run,
)

import rnnkit
from rnnkit.errors import DataError, UsageError
from rnnkit.generate import SamplingConfig, generate_pieces
from rnnkit.tasks.caption import LoadedCaptioner, load_image
from rnnkit.tasks.caption.metrics import describe
from rnnkit.tasks.classify import LoadedClassifier
from rnnkit.tasks.forecast.data import prepare, read_series, windows
from rnnkit.tasks.forecast.metrics import errors
from rnnkit.tasks.forecast.task import LoadedForecaster
from rnnkit.tasks.lm import LoadedLM, score_text
from rnnkit.tasks.speech import LoadedSpeech, transcribe_encoded
from rnnkit.tasks.tag import LoadedTagger
from rnnkit.tasks.tag.metrics import tag_lines

# -------------------------------------------------------------------------------------------------
# the char-RNN


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> LoadedLM:
    found = rnnkit.load(served_run(tmp_path_factory.mktemp("lm")))
    assert isinstance(found, LoadedLM)
    return found


def test_generate_is_the_text_generate_pieces_writes(lm):
    text = lm.generate("the ", 60, temperature=0.8, seed=3)
    pieces = generate_pieces(lm.model, lm.vocab, "the ", 60, SamplingConfig(temperature=0.8), seed=3)
    assert isinstance(text, str) and text == "".join(p.text for p in pieces)
    assert len(text) == 60 and lm.generate("the ", 60, seed=3) == text  # the same seed, the same text
    assert lm.generate("the ", 60, seed=4) != text


def test_generate_options(lm):
    greedy = lm.generate("the ", 40, temperature=0)
    assert greedy == lm.generate("the ", 40, temperature=0, seed=9)  # greedy ignores the dice
    beam = lm.generate("the ", 20, beam=3)
    expected = generate_pieces(lm.model, lm.vocab, "the ", 20, SamplingConfig(), beam=3)
    assert beam == "".join(p.text for p in expected) and len(beam) == 20
    stopped = lm.generate("the ", 200, seed=1, stop=" ")
    assert stopped.endswith(" ") and stopped.count(" ") == 1
    poem = lm.generate(form=rnnkit.PoemForm(lm.vocab, line_chars=5, lines=2), seed=0)
    assert len(poem.replace("\n", "")) == 12 and poem.strip()[-1] == "。"  # two lines of 5 and a mark
    with pytest.raises(UsageError, match="beam"):
        lm.generate("the", 5, beam=0)


def test_generate_writes_in_the_precision_asked_for(lm, monkeypatch):
    from rnnkit import generate

    asked: list[str] = []
    real = generate.step_function
    monkeypatch.setattr(generate, "step_function", lambda m, p="fp32": asked.append(p) or real(m, p))
    text = lm.generate("the ", 60, temperature=0.8, seed=3, precision="int8")
    assert asked == ["int8"]  # the keyword reaches the sampler
    config = SamplingConfig(temperature=0.8)
    pieces = generate_pieces(lm.model, lm.vocab, "the ", 60, config, seed=3, precision="int8")
    assert text == "".join(p.text for p in pieces) and len(text) == 60
    assert lm.generate("the ", 60, temperature=0.8, seed=3, precision="int8") == text
    with pytest.raises(UsageError, match="--precision: expected one of"):
        lm.generate("the ", 5, precision="fp8")


def test_score_is_what_eval_reports(lm):
    text = "the cat sat on the mat.\n"
    found = lm.score(text)
    assert found == {k: v for k, v in score_text(lm, text, "x").items() if k != "file"}
    assert found["chars"] == len(text) - 1
    assert found["bits_per_char"] == pytest.approx(found["nats_per_char"] / math.log(2))
    assert found["perplexity"] == pytest.approx(math.exp(found["nats_per_char"]))
    with pytest.raises(DataError, match="two characters"):
        lm.score("a")


# -------------------------------------------------------------------------------------------------
# classify


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> LoadedClassifier:
    found = rnnkit.load(classify_run(tmp_path_factory.mktemp("classify")))
    assert isinstance(found, LoadedClassifier)
    return found


def test_classify_is_predict_argmax(classifier):
    texts = ["the movie was good", "an awful plot", "it", "really a lovely and fine story"]
    found = classifier.classify(texts)
    probabilities = classifier.predict(texts)
    assert [r["label"] for r in found] == [classifier.labels[i] for i in probabilities.argmax(-1).tolist()]
    for row, expected in zip(found, probabilities.tolist(), strict=True):
        assert list(row["probabilities"]) == classifier.labels == ["0", "1"]
        assert list(row["probabilities"].values()) == pytest.approx(expected, abs=1e-6)
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert classifier.classify([]) == []
    assert classifier.classify(texts[:1]) == found[:1]  # a batch gives what each text alone gives


# -------------------------------------------------------------------------------------------------
# tag


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory) -> LoadedTagger:
    found = rnnkit.load(segment_run(tmp_path_factory.mktemp("segment")))
    assert isinstance(found, LoadedTagger)
    return found


@pytest.fixture(scope="module")
def entities(tmp_path_factory) -> LoadedTagger:
    found = rnnkit.load(entity_run(tmp_path_factory.mktemp("entities")))
    assert isinstance(found, LoadedTagger)
    return found


def test_tag_texts_of_a_segmenter_gives_words(segmenter):
    texts = ["上海体育局召开会议", "我们 今天学习了"]
    found = segmenter.tag_texts(texts)
    lines = tag_lines(segmenter, texts)
    for text, row, line in zip(texts, found, lines, strict=True):
        assert set(row) == {"tokens", "tags", "words"}
        assert row["tokens"] == [c for c in text if not c.isspace()]
        assert row["tags"] == line.tags == segmenter.tag([row["tokens"]])[0]
        assert "".join(row["words"]) == "".join(text.split())
        assert row["words"] == line.words
    assert segmenter.tag_texts([]) == []


def test_tag_texts_of_an_entity_tagger_gives_spans(entities):
    found = entities.tag_texts(["john went to paris", "mary went to rome today"])
    assert set(found[0]) == {"tokens", "tags", "entities"}
    assert found[0]["tokens"] == ["john", "went", "to", "paris"]
    for row in found:
        assert row["tags"] == entities.tag([row["tokens"]])[0]
        marked = [i for i, t in enumerate(row["tags"]) if t != "O"]
        covered = [i for e in row["entities"] for i in range(e["start"], e["end"])]
        assert covered == marked  # every tagged token is in one entity (single-token B- tags here)
        for e in row["entities"]:
            assert e["text"] == " ".join(row["tokens"][e["start"] : e["end"]])
            assert row["tags"][e["start"]] == f"B-{e['type']}"


def test_entities_follow_seqeval_spans():
    from rnnkit.tasks.tag.metrics import entities_of

    tokens = ["New", "York", "is", "big", "Li", "Na", "x"]
    tags = ["B-LOC", "I-LOC", "O", "O", "B-PER", "I-PER", "O"]
    assert entities_of(tokens, tags) == [
        {"type": "LOC", "text": "New York", "start": 0, "end": 2},
        {"type": "PER", "text": "Li Na", "start": 4, "end": 6},
    ]
    assert entities_of(list("上海人"), ["B-LOC", "E-LOC", "S-PER"], "") == [
        {"type": "LOC", "text": "上海", "start": 0, "end": 2},
        {"type": "PER", "text": "人", "start": 2, "end": 3},
    ]


# -------------------------------------------------------------------------------------------------
# forecast


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory) -> LoadedForecaster:
    found = rnnkit.load(forecast_run(tmp_path_factory.mktemp("forecast")))
    assert isinstance(found, LoadedForecaster)
    return found


def test_forecast_equals_evaluate_on_the_same_windows(forecaster):
    """Forecasting from the values up to each test window's last input gives the forecasts (and the
    baseline forecasts) whose errors ``evaluate`` reports."""
    d = forecaster.config.data
    values = read_series(Path(d.path), d.column).values[:, 0].tolist()
    p = prepare(read_series(Path(d.path), d.column), d, forecaster.stats)
    ends = windows(p, d, "test")
    found = [forecaster.forecast(values[: end + 1]) for end in ends]
    actual = np.array([values[end + 1 : end + 1 + d.horizon] for end in ends])
    result = forecaster.evaluate("test")
    assert result["windows"] == len(ends) > 5
    model = np.array([f["forecast"] for f in found])
    assert errors(model, actual)["rmse"] == pytest.approx(result["rmse"], rel=1e-5)
    for name in ("naive", "seasonal_naive"):
        forecasts = np.array([f["baselines"][name] for f in found])
        assert errors(forecasts, actual) == pytest.approx(result[name], rel=1e-9)
    for f, end in zip(found, ends, strict=True):
        assert f["horizon"] == d.horizon == len(f["forecast"])
        assert f["history"] == pytest.approx(values[max(0, end + 1 - 200) : end + 1])


def test_forecast_of_the_saved_series(forecaster):
    found = forecaster.forecast()
    values = np.loadtxt(forecaster.config.data.path, delimiter=",", skiprows=1, usecols=1).tolist()
    assert found == forecaster.forecast(values)
    assert len(found["history"]) == min(200, len(values))
    assert found["history"][-1] == pytest.approx(values[-1])
    assert found["baselines"]["naive"] == [pytest.approx(values[-1])]
    assert found["baselines"]["seasonal_naive"] == [pytest.approx(values[-12])]  # monthly: a year back


def test_forecast_refuses_a_short_or_broken_series(forecaster):
    with pytest.raises(DataError, match=r"5 values; this forecaster needs at least 12") as err:
        forecaster.forecast([1.0, 2.0, 3.0, 4.0, 5.0])
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="finite"):
        forecaster.forecast([1.0] * 11 + [float("nan")])
    with pytest.raises(DataError, match="list of numbers"):
        forecaster.forecast(["a"] * 12)  # type: ignore[list-item]


# -------------------------------------------------------------------------------------------------
# speech


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> tuple[LoadedSpeech, list]:
    tmp = tmp_path_factory.mktemp("speech")
    found = rnnkit.load(speech_run(tmp))
    assert isinstance(found, LoadedSpeech)
    return found, sorted((tmp / "fsdd").glob("*.wav"))[:6]


def test_transcribe_bytes_equals_path(speech, tmp_path):
    loaded, paths = speech
    wav = a_wav(tmp_path)
    by_path = loaded.transcribe([wav, *paths])
    assert loaded.transcribe([wav.read_bytes(), *(p.read_bytes() for p in paths)]) == by_path
    assert by_path == transcribe_encoded(loaded.model, loaded.features([wav, *paths]), loaded.chars)
    together = loaded.transcribe(paths, beam=3)  # batched beam search = each recording alone
    assert together[:3] == [loaded.transcribe([p], beam=3)[0] for p in paths[:3]]
    assert together == loaded.transcribe([p.read_bytes() for p in paths], beam=3)
    assert loaded.transcribe([wav.read_bytes()], decoder="ctc") == loaded.transcribe([wav], decoder="ctc")
    assert loaded.transcribe([]) == []


def test_attend_rows_are_the_output_characters(speech, tmp_path):
    loaded, _ = speech
    wav = a_wav(tmp_path)
    found = loaded.attend(wav.read_bytes())
    assert found == loaded.attend(wav)
    assert found["text"] == loaded.transcribe([wav])[0]
    rows = found["attention"]
    assert len(rows) == min(len(found["text"]) + 1, loaded.chars.max_length + 1)
    assert all(sum(row) == pytest.approx(1.0, abs=1e-4) for row in rows)
    steps = len(rows[0])
    assert all(len(row) == steps for row in rows) and 1 <= steps < loaded.features([wav])[0].shape[0]


@pytest.mark.parametrize(
    "data, message",
    [(b"", "empty"), (b"RIFF\x00\x00not a wave file at all", "not a readable audio file"),
     (b"\x89PNG\r\n\x1a\n" + bytes(64), "not a readable audio file")],
)  # fmt: skip
def test_broken_audio_bytes_are_one_line_errors(speech, data, message):
    loaded, _ = speech
    with pytest.raises(DataError, match=message) as err:
        loaded.transcribe([data])
    assert "\n" not in str(err.value)


def test_stereo_and_too_short_audio_are_refused(speech):
    import io

    import soundfile

    loaded, _ = speech
    stereo, short = np.zeros((800, 2), np.float32), np.zeros(80, np.float32)
    for samples, message in [(stereo, "2 channels"), (short, "0.010 s")]:
        buffer = io.BytesIO()
        soundfile.write(buffer, samples, 8000, format="WAV")
        with pytest.raises(DataError, match=message):
            loaded.attend(buffer.getvalue())


# -------------------------------------------------------------------------------------------------
# caption


@pytest.fixture(scope="module")
def captioner(tmp_path_factory) -> LoadedCaptioner:
    found = rnnkit.load(caption_run(tmp_path_factory.mktemp("caption")))
    assert isinstance(found, LoadedCaptioner)
    return found


def test_caption_bytes_equals_path(captioner, tmp_path):
    png = a_png(tmp_path)
    from PIL import Image

    jpg = tmp_path / "square.jpg"
    Image.open(png).save(jpg, format="JPEG")
    for beam in (1, 3):
        by_path = captioner.caption([png, jpg], beam=beam)
        assert captioner.caption([png.read_bytes(), jpg.read_bytes()], beam=beam) == by_path
        size = captioner.config.model.image_size
        images = torch.stack([load_image(png, size), load_image(jpg, size)])
        words = captioner.config.data.max_words
        assert by_path == describe(captioner.model, images, captioner.vocab, words, beam)
        assert all(isinstance(c, str) for c in by_path)
    assert captioner.describe([png]) == captioner.caption([png])
    assert captioner.caption([]) == []


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n" + bytes(40), b"RIFF0000WAVEfmt "])
def test_broken_image_bytes_are_one_line_errors(captioner, data):
    with pytest.raises(DataError, match="the image: not a readable image") as err:
        captioner.caption([data])
    assert "\n" not in str(err.value)


# -------------------------------------------------------------------------------------------------
# one input where a list is expected (review #19, finding 6)


def refused(call, method: str) -> None:
    """``call()`` is a one-line UsageError that names ``method`` and says to pass a list."""
    with pytest.raises(UsageError, match=rf"^{method}: expected a list of .*pass a list") as err:
        call()
    assert "\n" not in str(err.value)


def test_one_text_is_refused_where_texts_are_expected(classifier, segmenter, entities, forecaster):
    refused(lambda: classifier.classify("the movie was good"), "classify")
    refused(lambda: classifier.predict("the movie was good"), "predict")
    refused(lambda: classifier.encode("the movie was good"), "encode")
    refused(lambda: entities.tag(["john went to paris"]), "tag")  # a sentence is a list of tokens
    refused(lambda: entities.tag("john went to paris"), "tag")  # type: ignore[arg-type]
    refused(lambda: segmenter.tag_texts("上海体育局"), "tag_texts")
    refused(lambda: forecaster.forecast("1 2 3 4 5 6 7 8 9 10 11 12"), "forecast")  # type: ignore[arg-type]
    assert len(entities.tag([["john", "went", "to", "paris"]])[0]) == 4  # lists still work
    assert len(classifier.classify(("the movie was good", "it"))) == 2  # any sequence of texts


def test_one_file_is_refused_where_files_are_expected(speech, captioner, tmp_path):
    loaded, paths = speech
    for one in (paths[0], str(paths[0]), paths[0].read_bytes()):
        refused(lambda one=one: loaded.transcribe(one), "transcribe")
        refused(lambda one=one: loaded.features(one), "features")
    png = a_png(tmp_path)
    for one in (png, str(png), png.read_bytes()):
        refused(lambda one=one: captioner.caption(one), "caption")
    assert captioner.caption((png,)) == captioner.caption([png])
