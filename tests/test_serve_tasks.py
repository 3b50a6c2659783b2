"""``rnnkit serve`` for every task: one app holding a run of each, its endpoints answering what
``rnnkit.load(run)`` gives for the same input, and every refusal (415, 413, 422, 404, 400) one JSON line."""

from __future__ import annotations

import importlib.util
import io
import os
import site
import struct
import sys
import sysconfig
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException
from tests import task_runs
from tests.helpers import served_run

import rnnkit
from rnnkit.cli import main
from rnnkit.data.audio import read_wav
from rnnkit.errors import DataError, UsageError
from rnnkit.serve import ServeConfig, create_app
from rnnkit.serve.uploads import audio_seconds, image_size

LOOPBACK = "http://127.0.0.1"
LIMITS = {"max_body": 100_000, "max_upload": 300_000, "max_audio_seconds": 2.0, "max_pixels": 64 * 64}
"""Small limits, so that small files pass them and slightly larger ones do not."""
WAV = {"content-type": "audio/wav"}
PNG = {"content-type": "image/png"}
JPEG = {"content-type": "image/jpeg"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Models this small run many times faster on one thread than on two shared with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread) -> dict:
    def made(name: str, build):
        return build(tmp_path_factory.mktemp(name))

    return {
        "lm": made("lm", lambda tmp: served_run(tmp, steps=5)),
        "classify": made("classify", task_runs.classify_run),
        "segment": made("segment", task_runs.segment_run),
        "entity": made("entity", task_runs.entity_run),
        "forecast": made("forecast", task_runs.forecast_run),
        "speech": made("speech", task_runs.speech_run),
        "caption": made("caption", task_runs.caption_run),
    }


@pytest.fixture(scope="module")
def app(runs):
    return create_app(ServeConfig(runs=[f"{name}={run}" for name, run in runs.items()], **LIMITS))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, base_url=LOOPBACK) as c:
        yield c


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("files")
    return {"wav": task_runs.a_wav(tmp).read_bytes(), "png": task_runs.a_png(tmp).read_bytes()}


def wav_bytes(seconds: float, rate: int = 8000, poison: float | None = None) -> bytes:
    """A 440 Hz tone as a WAV file (32-bit float with ``poison``, one of its samples that value)."""
    import soundfile

    out = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    if poison is not None:
        samples[len(samples) // 2] = poison
    subtype = "FLOAT" if poison is not None else None
    soundfile.write(out, samples, rate, format="WAV", subtype=subtype)
    return out.getvalue()


def picture_bytes(width: int, height: int, fmt: str = "PNG", noise: bool = False) -> bytes:
    from PIL import Image

    if noise:
        pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        picture = Image.fromarray(pixels)
    else:
        picture = Image.new("RGB", (width, height), (20, 120, 200))
    out = io.BytesIO()
    picture.save(out, format=fmt)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header (right CRCs) declares ``width`` x ``height`` and whose pixel data is one
    compressed empty row: a file of a few dozen bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def refused(answer, status: int, *words: str) -> str:
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"] == "application/json"
    message = answer.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message
    return message


# -------------------------------------------------------------------------------------------------
# what is served


def test_models_lists_each_task_and_the_limits(client, runs):
    listed = client.get("/v1/models").json()
    tasks = {m["name"]: m["task"] for m in listed["models"]}
    assert tasks == {"lm": "lm", "classify": "classify", "segment": "tag", "entity": "tag",
                     "forecast": "forecast", "speech": "speech", "caption": "caption"}  # fmt: skip
    info = {m["name"]: m for m in listed["models"]}
    assert info["classify"]["labels"] == ["0", "1"] and info["classify"]["tokens"] == "word"
    assert info["segment"]["kind"] == "segmentation" and info["entity"]["kind"] == "entities"
    assert info["forecast"]["window"] == 12 and info["forecast"]["horizon"] == 1
    assert info["speech"]["sample_rate"] == 8000 and info["caption"]["image_size"] == 32
    assert info["lm"]["cell"] == "lstm" and all(m["parameters"] > 0 for m in listed["models"])
    assert listed["limits"] == {"texts": 64, "text_chars": 10_000, "body_bytes": 100_000,
                                "upload_bytes": 300_000, "audio_seconds": 2.0, "pixels": 4096}  # fmt: skip
    schema = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/classify", "/v1/tag", "/v1/forecast", "/v1/transcribe", "/v1/caption"):
        assert "post" in schema[path]
    assert set(schema["/v1/transcribe"]["post"]["requestBody"]["content"]) == {
        "audio/wav", "audio/x-wav", "audio/wave"}  # fmt: skip
    assert set(schema["/v1/caption"]["post"]["requestBody"]["content"]) == {"image/png", "image/jpeg"}


def test_the_default_limits():
    config = ServeConfig(runs=["x"])
    assert (config.max_upload, config.max_audio_seconds, config.max_pixels) == (5_000_000, 20.0, 4096 * 4096)
    with pytest.raises(UsageError, match="--max-upload: expected 1 or more"):
        ServeConfig(runs=["x"], max_upload=0)
    with pytest.raises(UsageError, match="--max-audio-seconds"):
        ServeConfig(runs=["x"], max_audio_seconds=float("nan"))


def test_each_run_is_loaded_once_whatever_its_task(runs, monkeypatch):
    import rnnkit.tasks

    calls = []
    real = rnnkit.tasks.load_run

    def counted(path, *args, **kwargs):
        calls.append((path, kwargs))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(rnnkit.tasks, "load_run", counted)
    specs = [str(runs["classify"]), f"air={runs['forecast']}", str(runs["caption"])]
    app = create_app(ServeConfig(runs=specs, backbone="tests.helpers:standin_cnn"))
    # the operator's --backbone goes to the captioner only
    assert calls == [
        (runs["classify"], {"device": "cpu", "task": "classify"}),
        (runs["forecast"], {"device": "cpu", "task": "forecast"}),
        (runs["caption"], {"device": "cpu", "task": "caption", "backbone": "tests.helpers:standin_cnn"}),
    ]
    with TestClient(app, base_url=LOOPBACK) as c:
        for _ in range(3):
            assert c.post("/v1/classify", json={"texts": ["good"]}).status_code == 200
            assert c.post("/v1/forecast", json={"model": "air"}).status_code == 200
    assert len(calls) == 3


# -------------------------------------------------------------------------------------------------
# the answers are the library's


def test_classify_answers_a_batch_as_the_library_does(client, app, runs, monkeypatch):
    texts = ["a really lovely story", "the plot was awful", "it was a fine movie and a great story"]
    network = app.state.models["classify"].model
    forwards = []
    real = network.forward
    monkeypatch.setattr(network, "forward", lambda *a, **k: forwards.append(1) or real(*a, **k))
    answer = client.post("/v1/classify", json={"texts": texts}).json()  # the only classifier: no name
    assert len(forwards) == 1  # three texts, one batch
    assert answer == {"model": "classify", "results": rnnkit.load(runs["classify"]).classify(texts)}
    assert [r["label"] for r in answer["results"]] == [
        max(r["probabilities"], key=r["probabilities"].get) for r in answer["results"]
    ]


def test_tag_gives_words_or_entities_as_the_library_does(client, app, runs, monkeypatch):
    texts = ["上海体育局召开会议", "我们今天学习"]
    network = app.state.models["segment"].model
    decodes = []
    real = network.decode
    monkeypatch.setattr(network, "decode", lambda *a, **k: decodes.append(len(a[0])) or real(*a, **k))
    answer = client.post("/v1/tag", json={"model": "segment", "texts": texts}).json()
    assert decodes == [2]  # two texts, one batch
    assert answer == {"model": "segment", "results": rnnkit.load(runs["segment"]).tag_texts(texts)}
    assert all("words" in r and len(r["tokens"]) == len(r["tags"]) for r in answer["results"])
    texts = ["john went to paris", "mary went to rome today"]
    answer = client.post("/v1/tag", json={"model": "entity", "texts": texts}).json()
    assert answer == {"model": "entity", "results": rnnkit.load(runs["entity"]).tag_texts(texts)}
    assert all("entities" in r for r in answer["results"])


def test_forecast_of_a_series_and_of_the_run_s_own(client, runs):
    loaded = rnnkit.load(runs["forecast"])
    series = [100 + 10 * np.sin(i / 2) for i in range(40)]
    answer = client.post("/v1/forecast", json={"series": series}).json()
    assert answer == {"model": "forecast", **loaded.forecast(series)}
    assert len(answer["forecast"]) == answer["horizon"] == 1 and set(answer["baselines"]) == {
        "naive", "seasonal_naive"}  # fmt: skip
    own = client.post("/v1/forecast", json={"model": "forecast", "series": None}).json()
    assert own == {"model": "forecast", **loaded.forecast()} and own["forecast"] != answer["forecast"]


def test_transcribe_a_wav_as_the_library_does(client, runs, files):
    loaded = rnnkit.load(runs["speech"])
    answer = client.post("/v1/transcribe", content=files["wav"], headers=WAV).json()
    assert answer == {"model": "speech", "text": loaded.transcribe([files["wav"]])[0]}
    beam = client.post("/v1/transcribe?beam=3", content=files["wav"], headers={"content-type": "audio/x-wav"})
    assert beam.json()["text"] == loaded.transcribe([files["wav"]], beam=3)[0]
    seen = client.post(
        "/v1/transcribe?model=speech&attention=true", content=files["wav"],
        headers={"content-type": "audio/wave; charset=binary"},
    ).json()  # fmt: skip
    expected = loaded.attend(files["wav"])
    assert seen["text"] == expected["text"]
    np.testing.assert_allclose(seen["attention"], expected["attention"], rtol=1e-6)
    # a row per character spelled (and one for the end, if it came), each summing to 1
    assert len(seen["text"]) <= len(seen["attention"]) <= len(seen["text"]) + 1
    np.testing.assert_allclose(np.sum(seen["attention"], axis=1), 1.0, rtol=1e-5)


def test_caption_a_png_or_jpeg_as_the_library_does(client, runs, files):
    loaded = rnnkit.load(runs["caption"])
    answer = client.post("/v1/caption", content=files["png"], headers=PNG).json()
    assert answer == {"model": "caption", "caption": loaded.caption([files["png"]])[0]}
    jpeg = picture_bytes(40, 30, "JPEG")
    beam = client.post("/v1/caption?beam=2", content=jpeg, headers={"content-type": "image/jpeg"}).json()
    assert beam == {"model": "caption", "caption": loaded.caption([jpeg], beam=2)[0]}


WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
FOLDERS = [sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"], *site.getsitepackages()]
READABLE = tuple(str(Path(p).resolve()) for p in [*FOLDERS, Path(rnnkit.__file__).parent])
"""Where a request may read files: the interpreter's own, the installed packages and rnnkit's (code
imported lazily, the playground's static files)."""
FILE_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.truncate", "shutil.copyfile", "shutil.move",
               "tempfile.mkstemp", "tempfile.mkdtemp"}  # fmt: skip
touched: list[tuple] | None = None
"""What the audit hook records while a test sets it to a list (audit hooks cannot be removed)."""


def watch_files(event: str, args: tuple) -> None:
    if touched is None:
        return
    if event in FILE_EVENTS:
        touched.append((event, *map(str, args[:2])))
    elif event == "open":
        path, mode, flags = args
        if isinstance(path, int):  # an open file descriptor: opened, and so seen, before
            return
        writes = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & WRITING)
        where = str(Path(os.fsdecode(path)).resolve())
        if writes or not where.startswith(READABLE):
            touched.append((event, where, mode, flags))


sys.addaudithook(watch_files)


def test_uploads_are_read_from_memory_only(client, files):
    # every way of opening a file (open, Path.open, io.open, os.open, tempfile) raises the "open" audit
    # event, in the server's worker threads too
    global touched
    touched = []
    try:
        answers = [
            client.post("/v1/transcribe", content=files["wav"], headers=WAV),
            client.post("/v1/transcribe?attention=true", content=files["wav"], headers=WAV),
            client.post("/v1/caption", content=files["png"], headers=PNG),
            client.post("/v1/caption?beam=2", content=picture_bytes(40, 30, "JPEG"),
                        headers={"content-type": "image/jpeg"}),
        ]  # fmt: skip
        seen, touched = touched, None
    finally:
        touched = None
    assert [a.status_code for a in answers] == [200] * 4
    assert seen == []


def test_the_file_watch_sees_every_way_of_writing(tmp_path):
    import tempfile

    global touched
    touched = []
    try:
        Path(tmp_path / "a").write_bytes(b"x")
        with (tmp_path / "b").open("wb"):
            pass
        os.close(os.open(tmp_path / "c", os.O_WRONLY | os.O_CREAT))
        with tempfile.TemporaryFile():
            pass
        (tmp_path / "a").read_bytes()  # a read outside the package and the interpreter's folders
        seen, touched = touched, None
    finally:
        touched = None
    opened = [(Path(entry[1]).name, entry[2]) for entry in seen if entry[0] == "open"]
    assert opened[:3] == [("a", "w"), ("b", "w"), ("c", None)]  # Path.write_bytes, Path.open, os.open
    assert (Path(tempfile.gettempdir()).name, "w+") in opened  # TemporaryFile opens its folder
    assert opened[-1] == ("a", "r")


# -------------------------------------------------------------------------------------------------
# refusals


def test_a_type_it_cannot_read_is_415(client, files):
    refused(client.post("/v1/transcribe", content=files["wav"], headers={"content-type": "text/plain"}), 415,
            "'text/plain'", "audio/wav")  # fmt: skip
    refused(client.post("/v1/transcribe", content=files["wav"]), 415, "Content-Type none")
    refused(client.post("/v1/caption", content=files["png"], headers={"content-type": "image/gif"}), 415,
            "image/jpeg or image/png")  # fmt: skip
    # the bytes are not what the Content-Type says
    refused(client.post("/v1/caption", content=files["wav"], headers=PNG), 415, "neither a PNG nor a JPEG")
    refused(client.post("/v1/transcribe", content=files["png"], headers=WAV), 415, "not a WAV file")
    gif = picture_bytes(8, 8, "GIF")
    refused(client.post("/v1/caption", content=gif, headers=PNG), 415)


def test_too_large_is_413_in_bytes_seconds_or_pixels(client):
    over = refused(client.post("/v1/transcribe", content=b"RIFF" + bytes(300_000), headers=WAV), 413,
                   "over 300,000 bytes")  # fmt: skip
    assert over
    refused(client.post("/v1/caption", content=PNG_MAGIC + bytes(300_000), headers=PNG), 413,
            "over 300,000 bytes")  # fmt: skip
    refused(client.post("/v1/transcribe", content=wav_bytes(3.0), headers=WAV), 413, "3.0 s", "limit of 2 s")
    assert client.post("/v1/transcribe", content=wav_bytes(1.5), headers=WAV).status_code == 200
    refused(
        client.post("/v1/caption", content=picture_bytes(65, 64), headers=PNG), 413, "65x64 = 4,160 pixels"
    )
    assert client.post("/v1/caption", content=picture_bytes(64, 64), headers=PNG).status_code == 200
    # a small file whose header claims a huge picture: refused from the header, nothing decoded
    refused(client.post("/v1/caption", content=png_claiming(20_000, 20_000), headers=PNG), 413)
    # an upload may be larger than a JSON body: 150 KB passes the byte limit of uploads (then its pixels
    # are too many), while the same size of JSON does not
    noisy = picture_bytes(220, 220, noise=True)
    assert 100_000 < len(noisy) < 300_000
    refused(client.post("/v1/caption", content=noisy, headers=PNG), 413, "pixels")
    big = {"texts": ["good " * 1000] * 30}
    refused(client.post("/v1/classify", json=big), 413, "over 100,000 bytes")


@pytest.mark.parametrize("claimed", [(10_000, 10_000), (20_000, 20_000)])
def test_pillow_s_decompression_bomb_guard_is_413(claimed):
    # above Pillow's MAX_IMAGE_PIXELS it warns, above twice that it raises: both 413, whatever our limit
    with pytest.raises(HTTPException) as caught:
        image_size(png_claiming(*claimed), limit=10**12)
    assert caught.value.status_code == 413 and "too large" in caught.value.detail
    assert image_size(png_claiming(5_000, 5_000), limit=10**12) == (5_000, 5_000)


def test_corrupt_files_are_422(client, files):
    riff = files["wav"][:12]
    refused(
        client.post("/v1/transcribe", content=riff + b"\x00garbage" * 50, headers=WAV),
        422,
        "WAV file is corrupt",
    )
    refused(client.post("/v1/transcribe", content=files["wav"][:60], headers=WAV), 422)
    refused(client.post("/v1/transcribe", content=b"", headers=WAV), 422, "empty")
    refused(
        client.post("/v1/caption", content=b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, headers=PNG),
        422,
        "corrupt",
    )
    refused(client.post("/v1/caption", content=files["png"][:70], headers=PNG), 422)  # cut inside the pixels
    refused(client.post("/v1/caption", content=b"", headers=PNG), 422, "empty")
    jpeg = picture_bytes(40, 30, "JPEG")
    refused(client.post("/v1/caption", content=jpeg[:4] + b"garbage" * 20, headers=JPEG), 422, "corrupt")
    refused(client.post("/v1/caption", content=jpeg[: len(jpeg) // 2], headers=JPEG), 422)  # cut short


@pytest.mark.parametrize("rate", [999_983, 200_000, 2_000])
def test_a_sample_rate_outside_4_to_192_khz_is_422(client, rate):
    # a prime rate would make the resampler build a filter of some 20 million taps (gigabytes)
    wav = wav_bytes(0.05, rate)
    assert len(wav) < LIMITS["max_upload"]
    with pytest.raises(HTTPException) as caught:
        audio_seconds(wav, limit=60)
    assert caught.value.status_code == 422 and f"{rate:,} Hz" in caught.value.detail
    refused(client.post("/v1/transcribe", content=wav, headers=WAV), 422, f"sample rate {rate:,} Hz",
            "4-192 kHz")  # fmt: skip
    with pytest.raises(DataError, match=f"the upload: sample rate {rate:,} Hz"):
        read_wav(wav, 8000, name="the upload")
    assert len(read_wav(wav_bytes(0.05, 192_000), 8000)) == 400  # the edges pass
    assert len(read_wav(wav_bytes(0.05, 4_000), 8000)) == 400


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_samples_that_are_not_finite_are_422(client, runs, poison):
    wav = wav_bytes(0.5, poison=poison)
    for query in ("", "?attention=true"):
        refused(client.post(f"/v1/transcribe{query}", content=wav, headers=WAV), 422, "not finite")
    with pytest.raises(DataError, match="not finite"):
        rnnkit.load(runs["speech"]).attend(wav)


def test_a_huge_series_is_422_not_a_nan_forecast(client, runs):
    refused(client.post("/v1/forecast", json={"series": [1e308] * 40}), 422, "series.0", "less than or equal")
    refused(client.post("/v1/forecast", json={"series": [-1e31] * 40}), 422, "series.0", "greater than")
    assert client.post("/v1/forecast", json={"series": [1e30] * 40}).status_code == 200  # the bound passes
    # a forecast that overflowed all the same (float32 inside the model) is a one-line DataError
    loaded = rnnkit.load(runs["forecast"])
    real = loaded.model
    loaded.model = lambda x: real(x) * float("nan")
    with pytest.raises(DataError, match="the series: the forecast is not a finite number"):
        loaded.forecast([1.0] * 40)


def test_a_data_error_of_several_lines_is_answered_in_one(client, app, monkeypatch):
    def broken(*args):
        raise DataError("the series: line one\nline two\n  line three")

    monkeypatch.setattr(app.state.models["forecast"].loaded, "forecast", broken)
    message = refused(client.post("/v1/forecast", json={"series": [1.0] * 40}), 422)
    assert message == "the series: line one line two line three"


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/v1/classify", {"texts": []}, ["texts", "at least 1"]),
        ("/v1/classify", {"texts": ["good"] * 65}, ["texts", "at most 64"]),
        ("/v1/classify", {"texts": "good"}, ["texts"]),
        ("/v1/classify", {"texts": ["x" * 10_001]}, ["texts.0"]),
        ("/v1/classify", {"texts": ["good"], "top": 3}, ["top", "Extra inputs"]),
        ("/v1/tag", {"model": "entity", "texts": [3]}, ["texts.0"]),
        ("/v1/tag", {"texts": ["john went"]}, ["model", "2 tag models", "segment, entity"]),
        ("/v1/forecast", {"series": []}, ["series"]),
        ("/v1/forecast", {"series": ["a"]}, ["series.0"]),
        ("/v1/forecast", {"series": [1.0, 2.0, 3.0]}, ["3 values", "at least 12"]),
    ],
)
def test_invalid_fields_are_422(client, path, body, words):
    refused(client.post(path, json=body), 422, *words)


def test_invalid_upload_parameters_are_422(client, files):
    for query, words in [
        ("beam=0", ["beam"]),
        ("beam=99", ["beam"]),
        ("beam=two", ["beam"]),
        ("attention=maybe", ["attention"]),
        ("attention=true&beam=2", ["greedy"]),
        ("speed=2", ["speed", "Extra inputs"]),
    ]:
        refused(client.post(f"/v1/transcribe?{query}", content=files["wav"], headers=WAV), 422, *words)
    refused(client.post("/v1/caption?beam=0", content=files["png"], headers=PNG), 422, "beam")


def test_an_unknown_model_is_404_and_another_task_s_model_400(client, files):
    bodies = [("/v1/classify", {"texts": ["x"]}), ("/v1/tag", {"texts": ["x"]}), ("/v1/forecast", {})]
    for path, body in [*bodies, ("/v1/generate", {})]:
        refused(
            client.post(path, json=body | {"model": "nope"}),
            404,
            "no model named 'nope'",
            "classify (classify)",
        )
    refused(client.post("/v1/transcribe?model=nope", content=files["wav"], headers=WAV), 404, "'nope'")
    refused(client.post("/v1/caption?model=nope", content=files["png"], headers=PNG), 404, "'nope'")
    cases = [
        ("/v1/classify", {"model": "entity", "texts": ["x"]}, "is a tagger, not a classifier"),
        ("/v1/tag", {"model": "classify", "texts": ["x"]}, "is a classifier, not a tagger"),
        ("/v1/forecast", {"model": "lm"}, "is a language model, not a forecaster"),
        ("/v1/generate", {"model": "classify"}, "is a classifier, not a language model"),
        ("/v1/score", {"model": "forecast", "text": "ab"}, "is a forecaster, not a language model"),
        ("/v1/inspect", {"model": "caption", "text": "ab"}, "is a captioner, not a language model"),
    ]
    for path, body, words in cases:
        refused(client.post(path, json=body), 400, words)
    refused(client.post("/v1/transcribe?model=caption", content=files["wav"], headers=WAV), 400,
            "is a captioner, not a speech recogniser")  # fmt: skip
    refused(client.post("/v1/caption?model=speech", content=files["png"], headers=PNG), 400,
            "is a speech recogniser, not a captioner")  # fmt: skip


def test_a_task_nobody_serves_is_400(runs):
    with TestClient(create_app(ServeConfig(runs=[str(runs["classify"])])), base_url=LOOPBACK) as c:
        refused(c.post("/v1/forecast", json={}), 400, "no forecaster is served here")
        refused(c.post("/v1/generate", json={}), 400, "no language model is served here")
        refused(c.post("/v1/caption", content=b"x", headers=PNG), 400, "no captioner")


def test_the_language_model_endpoints_still_answer_beside_the_others(client, runs):
    answer = client.post("/v1/generate", json={"prime": "the", "length": 20, "seed": 3}).json()
    assert answer["model"] == "lm"
    assert answer["text"] == rnnkit.load(runs["lm"]).generate("the", 20, seed=3)
    assert client.post("/v1/score", json={"text": "the cat"}).json()["model"] == "lm"


def test_score_gives_the_figures_rnnkit_load_gives(client, runs):
    text = "the cat sat on the mat, and the dog ran after it"
    answer = client.post("/v1/score", json={"text": text, "top": 2}).json()
    expected = rnnkit.load(runs["lm"]).score(text)
    assert answer["score"] == pytest.approx(expected, rel=1e-6)
    assert set(answer["score"]) == {"chars", "nats_per_char", "bits_per_char", "perplexity",
                                    "unknown_chars", "unknown_distinct", "unknown_share"}  # fmt: skip
    assert answer["score"]["chars"] == answer["scored"] == len(text) - 1
    # the per-token figures of the same one pass agree with the library's per character ones here
    assert answer["nats_per_token"] == pytest.approx(expected["nats_per_char"], rel=1e-4)
    for field in ("tokens", "scored", "bits_per_token", "perplexity", "probabilities", "candidates"):
        assert field in answer


def test_the_default_model_is_the_first_language_model(runs):
    specs = [f"clf={runs['classify']}", f"lm={runs['lm']}", f"lm2={runs['lm']}"]
    with TestClient(create_app(ServeConfig(runs=specs)), base_url=LOOPBACK) as c:
        assert c.get("/v1/models").json()["default"] == "lm"
        assert c.post("/v1/generate", json={"length": 3}).json()["model"] == "lm"
        assert c.post("/v1/score", json={"text": "the cat"}).json()["model"] == "lm"
    with TestClient(create_app(ServeConfig(runs=[str(runs["classify"])])), base_url=LOOPBACK) as c:
        assert c.get("/v1/models").json()["default"] is None


# -------------------------------------------------------------------------------------------------
# the command line


def test_serve_passes_the_limits_and_refuses_bad_ones(runs, monkeypatch, capsys):
    import rnnkit.serve.server

    served = {}
    monkeypatch.setattr(
        rnnkit.serve.server, "serve", lambda app, config: served.update(app=app, config=config)
    )
    args = ["serve", str(runs["classify"]), f"air={runs['forecast']}", "--max-upload", "1000"]
    assert main([*args, "--max-audio-seconds", "5", "--max-pixels", "100", "--port", "9123"]) == 0
    config = served["config"]
    assert (config.max_upload, config.max_audio_seconds, config.max_pixels, config.port) == (
        1000,
        5.0,
        100,
        9123,
    )
    assert set(served["app"].state.models) == {runs["classify"].name, "air"}
    capsys.readouterr()
    assert main(["serve", str(runs["classify"]), "--max-pixels", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: --max-pixels: expected 1 or more") and err.count("\n") == 1


# -------------------------------------------------------------------------------------------------
# the load bench


def load_bench(monkeypatch):
    """bench/serve_load.py as a module (it imports bench/common.py as ``common``, run from bench/)."""
    bench = Path(__file__).parents[1] / "bench"
    monkeypatch.syspath_prepend(str(bench))
    path = bench / "serve_load.py"
    spec = importlib.util.spec_from_file_location("serve_load", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("errors", [0, 2])
def test_the_mixed_load_bench_exits_1_when_a_request_failed(monkeypatch, capsys, errors):
    bench = load_bench(monkeypatch)
    row = {"requests": 10, "concurrency": 2, "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0,
           "requests_per_s": 5.0, "wall_s": 2.0}  # fmt: skip
    rows = [row | {"kind": "generate", "errors": errors, "first_errors": ["500 boom"] * errors},
            row | {"kind": "classify", "errors": 0, "first_errors": []}]  # fmt: skip

    async def mixed_load(*args):
        return rows

    monkeypatch.setattr(bench, "mixed_load", mixed_load)
    monkeypatch.setattr(bench, "machine", lambda: "test")
    args = bench.argparse.Namespace(requests=20, concurrency=2, length=5)
    if errors:
        with pytest.raises(SystemExit) as caught:
            bench.mixed_run("http://127.0.0.1:1", {}, [], args)
        assert caught.value.code == 1
    else:
        assert bench.mixed_run("http://127.0.0.1:1", {}, [], args) is None
    assert f"errors: {errors} of 20" in capsys.readouterr().out
