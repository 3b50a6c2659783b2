"""The playground's task views in a real browser (Debian's chromium, headless, driven by Playwright,
as tests/test_playground.py does): one server holds a classifier, a word segmenter, an entity tagger, a
forecaster, a speech recogniser and a captioner (tiny runs of tests/task_runs.py); each test picks a
model in the page, uses its view, and checks that what the page shows is what the server's endpoint
answers for the same input. A tiny language model (tests/helpers.py's served_run) is served beside
them, and its view is opened from the task views and back. Where chromium cannot be installed the tests
are skipped with the reason.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import urllib.error
import urllib.request
import wave

import numpy
import pytest
from tests import task_runs
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, live_server, served_run

from rnnkit.serve import ServeConfig, create_app

ARGS = [
    *CHROMIUM_ARGS,
    # a microphone that plays a test tone, and no permission prompt (the context grants the microphone)
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


def entity_run(tmp):
    """tests/task_runs.py's entity tagger trained longer, until it marks entities (fewer steps can
    leave it tagging every word O, and then there is nothing to highlight)."""
    run = tmp / "entity-run"
    args = ["tag", "train", str(task_runs.entity_file(tmp / "ner.conll")), "--out", str(run)]
    args += ["--max-steps", "60", *task_runs.TAG_FLAGS, *task_runs.CPU, "--set", "train.precision=fp32"]
    task_runs.train(args)
    return run


RUNS = {
    "sentiment": task_runs.classify_run,
    "segmenter": task_runs.segment_run,
    "ner": entity_run,
    "airline": task_runs.forecast_run,
    "digits": task_runs.speech_run,
    "shapes": task_runs.caption_run,
    "poet": served_run,
}
VIEWS = {
    "sentiment": "classify",
    "segmenter": "tag",
    "ner": "tag",
    "airline": "forecast",
    "digits": "speech",
    "shapes": "caption",
    "poet": "lm",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, a WAV file, a PNG file) of a live server holding one model of each task and a
    language model."""
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install chromium); scripts/ensure-chromium does it")
    pytest.importorskip("playwright.sync_api")
    runs = [f"{name}={make(tmp_path_factory.mktemp(name))}" for name, make in RUNS.items()]
    files = tmp_path_factory.mktemp("inputs")
    with live_server(create_app(ServeConfig(runs=runs))) as url:
        yield url, task_runs.a_wav(files), task_runs.a_png(files)


@pytest.fixture(scope="module")
def browser(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(served, browser):
    url = served[0]
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.grant_permissions(["microphone"], origin=url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_function("document.getElementById('status').textContent === 'ready'", timeout=20_000)
    page.errors = errors
    yield page
    context.close()


def choose(page, name: str) -> None:
    page.select_option("#model", name)
    page.wait_for_selector(f"#view-{VIEWS[name]}:not([hidden])")


def call(served, path: str, body: bytes, content_type: str) -> tuple[int, dict]:
    """(status, JSON answer) of POST ``path`` with ``body`` on the live server."""
    request = urllib.request.Request(served[0] + path, body, {"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def post(served, path: str, *, json_body: dict | None = None, content: bytes = b"", kind: str = "") -> dict:
    """The endpoint's answer to a JSON body, or to the file ``content`` of type ``kind``."""
    if json_body is not None:
        status, found = call(served, path, json.dumps(json_body).encode(), "application/json")
    else:
        status, found = call(served, path, content, kind)
    assert status == 200, found
    return found


def served_models(served) -> list[dict]:
    """What ``GET /v1/models`` lists."""
    with urllib.request.urlopen(served[0] + "/v1/models", timeout=60) as response:
        return json.loads(response.read())["models"]


def wait_done(page, selector: str) -> None:
    page.wait_for_selector(f"{selector}[data-state=done]", timeout=60_000)


def test_the_model_list_opens_each_tasks_view(served, page):
    options = page.eval_on_selector_all("#model option", "els => els.map(e => [e.value, e.textContent])")
    assert [value for value, _ in options] == list(RUNS)
    for name, view in VIEWS.items():
        choose(page, name)
        shown = page.eval_on_selector_all(".view:not([hidden])", "els => els.map(e => e.id)")
        assert shown == [f"view-{view}"]
        assert page.inner_text("#task") == view
        assert page.evaluate("location.hash") == f"#model={name}"
    # the address opens a view: a link to a model can be shared
    page.goto(f"{served[0]}/#model=shapes")
    page.wait_for_function("document.getElementById('status').textContent === 'ready'")
    assert page.input_value("#model") == "shapes"
    assert page.is_visible("#view-caption") and not page.is_visible("#view-lm")
    assert page.errors == []


def test_classify_shows_labels_with_probabilities(served, page):
    choose(page, "sentiment")
    texts = ["the movie was great and lovely", "it was an <b>awful</b> dull plot"]
    page.fill("#classify-text", "\n".join(texts) + "\n\n")  # blank lines are not texts
    page.click("#classify-run")
    wait_done(page, "#classify-results")
    expected = post(served, "/v1/classify", json_body={"model": "sentiment", "texts": texts})["results"]
    results = page.locator("#classify-results .result")
    assert results.count() == len(texts)
    for i, want in enumerate(expected):
        result = results.nth(i)
        assert result.get_attribute("data-label") == want["label"]
        assert result.locator(".label-chip").inner_text() == want["label"]
        rows = result.locator("tr")
        shown = [
            (rows.nth(r).get_attribute("data-label"), float(rows.nth(r).get_attribute("data-p")))
            for r in range(rows.count())
        ]
        assert dict(shown) == want["probabilities"]  # every label, the very same numbers
        assert [p for _, p in shown] == sorted(want["probabilities"].values(), reverse=True)
        assert rows.nth(0).locator(".pct").inner_text() == f"{100 * shown[0][1]:.1f}%"
        widths = [rows.nth(r).locator(".bar").bounding_box()["width"] for r in range(rows.count())]
        assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]
    # what was typed is shown as typed: text, never markup
    assert page.locator("#classify-results b").count() == 0
    assert results.nth(1).locator(".result-text").inner_text().endswith("it was an <b>awful</b> dull plot")
    assert "classified 2 texts" in page.inner_text("#status")
    assert page.errors == []


def test_a_segmenter_shows_the_words(served, page):
    choose(page, "segmenter")
    text = "我们今天学习了新工作"
    page.fill("#tag-text", text)
    page.click("#tag-run")
    wait_done(page, "#tag-results")
    (want,) = post(served, "/v1/tag", json_body={"model": "segmenter", "texts": [text]})["results"]
    result = page.locator("#tag-results .result")
    assert result.get_attribute("data-kind") == "words"
    words = result.locator(".word").all_inner_texts()
    assert words == want["words"] and "".join(words) == text
    assert len(words) > 1
    tags = result.locator(".pair").evaluate_all("els => els.map(e => e.dataset.tag)")
    assert tags == want["tags"]
    assert page.errors == []


def test_a_tagger_marks_the_entities_in_the_text(served, page):
    choose(page, "ner")
    text = "mary went to rome"
    page.fill("#tag-text", text)
    page.click("#tag-run")
    wait_done(page, "#tag-results")
    (want,) = post(served, "/v1/tag", json_body={"model": "ner", "texts": [text]})["results"]
    assert want["entities"], "the tiny tagger found no entity to show"
    result = page.locator("#tag-results .result")
    assert result.get_attribute("data-kind") == "entities"
    marks = result.locator("mark.entity")
    shown = [(marks.nth(i).get_attribute("data-type"), marks.nth(i).locator(".entity-text").inner_text())
             for i in range(marks.count())]  # fmt: skip
    assert shown == [(e["type"], " ".join(want["tokens"][e["start"] : e["end"]])) for e in want["entities"]]
    # the text itself is shown whole, the entities marked inside it
    plain = result.locator(".tagged").evaluate(
        "el => { const c = el.cloneNode(true); c.querySelectorAll('.entity-type').forEach(t => t.remove());"
        " return c.textContent; }"
    )
    assert plain == text
    assert page.errors == []


def generate_in_page(page, prime: str, length: int, seed: int) -> str:
    """Generate in the language model's view; the text the page shows once it is done."""
    page.fill("#prime", prime)
    page.fill("#length", str(length))
    page.fill("#seed", str(seed))
    page.fill("#temperature", "0.8")
    page.fill("#top-k", "0")
    page.click("#generate")  # empties the text and marks it streaming at once
    page.wait_for_selector("#output[data-state=done]", timeout=60_000)
    return page.eval_on_selector("#output", "el => el.textContent")


def test_the_language_model_view_opens_and_generates_between_task_views(served, page):
    """From a task's view to the language model's and back, twice: each time the LM view is the only
    one shown, set up for that model, and generates what /v1/generate answers for the same request;
    the task views still work after it."""
    (poet,) = [m for m in served_models(served) if m["name"] == "poet"]
    choose(page, "sentiment")
    page.fill("#classify-text", "the movie was great")
    page.click("#classify-run")
    wait_done(page, "#classify-results")
    for seed, other in ((3, "airline"), (11, "sentiment")):
        choose(page, "poet")
        shown = page.eval_on_selector_all(".view:not([hidden])", "els => els.map(e => e.id)")
        assert shown == ["view-lm"] and page.inner_text("#task") == "lm"
        assert page.evaluate("location.hash") == "#model=poet"
        assert page.inner_text("#model-info").startswith(f"{poet['cell'].upper()} {poet['layers']}x")
        assert page.locator("#layer option").count() == poet["layers"]
        text = generate_in_page(page, "the cat ", 40, seed)
        want = post(served, "/v1/generate", json_body={"model": "poet", "prime": "the cat ", "length": 40,
                    "temperature": 0.8, "top_k": 0, "seed": seed, "candidates": 5})  # fmt: skip
        assert text == "the cat " + want["text"]
        assert page.locator("#output .tok.gen").count() == want["tokens"] == 40
        assert "40 tokens" in page.inner_text("#status")
        # and on to another task's view, which answers as before, the LM's view hidden
        choose(page, other)
        assert not page.is_visible("#view-lm")
        page.click(f"#{VIEWS[other]}-run")
        wait_done(page, "#forecast-plot" if other == "airline" else "#classify-results")
    assert page.errors == []


def polyline(page, series: str) -> list[tuple[float, float]]:
    points = page.get_attribute(f"#forecast-plot polyline[data-series={series}]", "points")
    return [tuple(map(float, p.split(","))) for p in points.split()]


def column(page, kind: str) -> list[float]:
    script = "els => els.map(e => Number(e.dataset.value))"
    return page.eval_on_selector_all(f"#forecast-table td.{kind}", script)


def test_a_forecast_is_drawn_with_its_baselines(served, page):
    choose(page, "airline")
    for series in (None, [100 + 10 * math.sin(i / 2) + i for i in range(40)]):
        page.fill("#forecast-series", "" if series is None else ", ".join(map(str, series)))
        page.click("#forecast-run")
        wait_done(page, "#forecast-plot")
        want = post(served, "/v1/forecast", json_body={"model": "airline", "series": series})
        assert column(page, "forecast") == want["forecast"]
        assert column(page, "naive") == want["baselines"]["naive"]
        assert column(page, "seasonal_naive") == want["baselines"]["seasonal_naive"]
        horizon, history = want["horizon"], want["history"]
        if series is not None:
            assert history == series[-len(history) :]
        # one point per value, each line joined to the last value seen; higher values drawn higher
        assert len(polyline(page, "history")) == len(history)
        for name in ("forecast", "naive", "seasonal_naive"):
            assert len(polyline(page, name)) == horizon + 1
        values = [history[-1], *want["forecast"]]
        ys = [y for _, y in polyline(page, "forecast")]
        for i in range(horizon):  # y grows downward
            assert (values[i] - values[i + 1]) * (ys[i + 1] - ys[i]) >= -1e-9
        xs = [x for x, _ in polyline(page, "forecast")]
        assert xs == sorted(xs) and xs[0] == polyline(page, "history")[-1][0]
        assert page.is_visible("#forecast-legend")
    page.fill("#forecast-series", "1, 2, x")
    page.click("#forecast-run")
    page.wait_for_selector("#forecast-plot[data-state=error]")
    assert "not a number" in page.inner_text("#status")
    assert page.errors == []


def cell_colours(page) -> tuple[dict, list[list[int]]]:
    """The canvas's geometry and the red channel at the centre of every cell."""
    return page.evaluate(
        """() => {
          const c = document.getElementById('speech-attention-map'), d = c.dataset, ctx = c.getContext('2d');
          const geo = {rows: +d.rows, cols: +d.cols};
          const red = [];
          for (let r = 0; r < geo.rows; r++) {
            const row = [];
            for (let k = 0; k < geo.cols; k++) {
              const x = +d.left + k * +d.cellWidth + Math.floor(+d.cellWidth / 2);
              const y = +d.top + r * +d.cellHeight + Math.floor(+d.cellHeight / 2);
              row.push(ctx.getImageData(x, y, 1, 1).data[0]);
            }
            red.push(row);
          }
          return [geo, red];
        }"""
    )


def test_a_wav_is_transcribed_with_its_attention(served, page):
    _, wav, _ = served
    choose(page, "digits")
    page.set_input_files("#speech-file", str(wav))
    wait_done(page, "#speech-text")
    want = post(served, "/v1/transcribe?model=digits&attention=true", content=wav.read_bytes(),
                kind="audio/wav")  # fmt: skip
    assert page.inner_text("#speech-text") == want["text"]
    assert page.is_visible("#speech-attention-map")
    geo, red = cell_colours(page)
    attention = want["attention"]
    assert (geo["rows"], geo["cols"]) == (len(attention), len(attention[0]))
    # a row per character, and one for the end unless the transcript reached the length cap
    assert geo["rows"] - len(want["text"]) in (0, 1)
    for row, shown in zip(attention, red, strict=True):  # white (255) for 0 down to 13 for 1
        assert all(abs(s - (255 + (13 - 255) * v)) <= 1.01 for v, s in zip(row, shown, strict=True))
    # a wider beam: the page asks again, without the attention (the server gives it for beam 1 only)
    page.fill("#speech-beam", "3")
    page.click("#speech-run")  # marks the transcript busy at once
    wait_done(page, "#speech-text")
    assert "beam 1 only" in page.inner_text("#status")
    wide = post(served, "/v1/transcribe?model=digits&beam=3", content=wav.read_bytes(),
                kind="audio/wav")  # fmt: skip
    assert page.inner_text("#speech-text") == wide["text"]
    assert not page.is_visible("#speech-attention-map")
    page.fill("#speech-beam", "1")
    assert page.errors == []


def test_a_file_the_server_cannot_read_shows_its_error(served, page):
    _, _, png = served
    choose(page, "digits")
    page.set_input_files("#speech-file", str(png))
    page.wait_for_selector("#speech-text[data-state=error]", timeout=30_000)
    status, found = call(served, "/v1/transcribe?model=digits", png.read_bytes(), "image/png")
    assert status == 415
    assert page.inner_text("#status") == found["error"]
    assert page.errors == []


def test_a_picture_is_captioned(served, page):
    _, _, png = served
    choose(page, "shapes")
    page.set_input_files("#caption-file", str(png))
    wait_done(page, "#caption-text")
    for beam in (1, 3):
        if beam > 1:
            page.fill("#caption-beam", str(beam))
            page.click("#caption-run")  # marks the caption busy at once
            wait_done(page, "#caption-text")
        want = post(served, f"/v1/caption?model=shapes&beam={beam}", content=png.read_bytes(),
                    kind="image/png")  # fmt: skip
        assert page.inner_text("#caption-text") == want["caption"] != ""
    assert page.get_attribute("#caption-image", "src").startswith("data:image/png;base64,")
    assert page.is_visible("#caption-image")
    assert page.errors == []


def test_the_wav_the_page_encodes_is_a_plain_pcm_file(page):
    """What the microphone's recording is sent as: 16-bit mono PCM, read back by Python's wave module."""
    samples = [math.sin(i / 5) * 0.5 for i in range(800)] + [1.5, -1.5]  # the last two are clipped
    data = page.evaluate(
        "async (s) => Array.from(new Uint8Array(await RnnkitAudio.encodeWav(new Float32Array(s), 8000)"
        ".arrayBuffer()))",
        samples,
    )
    with wave.open(io.BytesIO(bytes(data))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 8000, 802)
        frames = w.readframes(802)
    read = [int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)]
    f32 = [float(numpy.float32(s)) for s in samples]
    want = [round(max(-1.0, min(1.0, s)) * (0x8000 if s < 0 else 0x7FFF)) for s in f32]
    assert read == want


def test_the_microphone_records_and_transcribes(served, page):
    """Chromium's fake microphone (a test tone): Record, Stop, and the recording goes to the server as
    a WAV at the model's sample rate, whose transcript the page shows."""
    choose(page, "digits")
    page.click("#speech-record")
    page.wait_for_function("document.getElementById('speech-record').textContent === 'Stop'")
    page.wait_for_timeout(800)
    with page.expect_request(lambda r: "/v1/transcribe" in r.url) as sent:
        page.click("#speech-record")
    wait_done(page, "#speech-text")
    body = sent.value.post_data_buffer
    with wave.open(io.BytesIO(body)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)  # the model's rate
        assert 0.5 < w.getnframes() / 8000 < 5
    want = post(served, "/v1/transcribe?model=digits&attention=true", content=body,
                kind="audio/wav")  # fmt: skip
    assert page.inner_text("#speech-text") == want["text"]
    assert page.inner_text("#speech-source").startswith("a recording of")
    assert page.inner_text("#speech-record") == "Record"
    assert page.errors == []


def test_a_refused_microphone_leaves_the_file_picker(served, browser):
    """Where the browser or the user refuses the microphone, the page says so and a WAV file still works."""
    context = browser.new_context()
    context.add_init_script(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"
    )
    page = context.new_page()
    page.goto(f"{served[0]}/#model=digits")
    page.wait_for_function("document.getElementById('status').textContent === 'ready'", timeout=20_000)
    page.click("#speech-record")
    page.wait_for_function("document.getElementById('speech-record').disabled")
    assert "microphone not available (NotAllowedError)" in page.inner_text("#status")
    page.set_input_files("#speech-file", str(served[1]))
    wait_done(page, "#speech-text")
    assert page.inner_text("#status").startswith("transcribed one.wav")
    context.close()
