"""The HTTP API (FastAPI's test client), the real server on loopback, and inspect/plot."""

from __future__ import annotations

import base64
import json
import math
import threading
import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from tests.helpers import events_of, live_server, served_run

from rnnkit import xray
from rnnkit.cli import main
from rnnkit.errors import CheckpointError, UsageError
from rnnkit.generate import SamplingConfig
from rnnkit.serve import ServeConfig, create_app
from rnnkit.serve.app import MAX_LENGTH, MAX_TEXT
from rnnkit.tasks.lm import generate_text, load_lm

LOOPBACK = "http://127.0.0.1"  # the test client's own "testserver" is not a trusted host name


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return served_run(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def client(run):
    with TestClient(create_app(ServeConfig(runs=[f"tiny={run}", str(run)])), base_url=LOOPBACK) as c:
        yield c


def test_health_models_and_openapi(client, run):
    assert client.get("/healthz").json() == {"status": "ok", "models": 2}
    listed = client.get("/v1/models").json()
    assert listed["default"] == "tiny"
    assert [m["name"] for m in listed["models"]] == ["tiny", run.name]
    first = listed["models"][0]
    assert first["cell"] == "lstm" and first["poem_form"] is True and first["parameters"] > 0
    schema = client.get("/openapi.json").json()
    assert {"/v1/generate", "/v1/score", "/v1/inspect", "/v1/models", "/healthz"} <= set(schema["paths"])
    page = client.get("/")
    assert page.status_code == 200 and 'id="generate"' in page.text
    assert client.get("/static/playground.js").status_code == 200


def test_generate_matches_the_library_and_is_reproducible(client, run):
    body = {"prime": "the cat", "length": 120, "temperature": 0.9, "top_k": 10, "seed": 7}
    first = client.post("/v1/generate", json=body).json()
    assert client.post("/v1/generate", json=body).json()["text"] == first["text"]
    assert first["tokens"] == 120 and first["model"] == "tiny"
    loaded = load_lm(run)
    config = SamplingConfig(temperature=0.9, top_k=10)
    expected = generate_text(loaded.model, loaded.vocab, "the cat", 120, config, seed=7)
    assert first["text"] == expected
    other = client.post("/v1/generate", json=body | {"seed": 8}).json()
    assert other["text"] != first["text"]


def test_candidates_are_the_models_distribution(client, run):
    body = {"prime": "the ", "length": 30, "seed": 1, "candidates": 5, "temperature": 0}
    steps = client.post("/v1/generate", json=body).json()["steps"]
    assert len(steps) == 30
    for step in steps:
        probs = [p for _, p in step["candidates"]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0001
        assert step["candidates"][0][0] == step["token"]  # greedy takes the top candidate
        assert math.isclose(step["p"], probs[0], rel_tol=1e-3)
    # the first step's candidates are the model's own next-token probabilities after the prime
    loaded = load_lm(run)
    with torch.no_grad():
        logits, _ = loaded.model(torch.tensor(loaded.vocab.encode("the ").tolist())[None])
    top = torch.softmax(logits[0, -1], -1).topk(5)
    assert [c for c, _ in steps[0]["candidates"]] == [loaded.vocab.tokens[i] for i in top.indices.tolist()]


def test_stop_string_ends_the_text(client):
    out = client.post("/v1/generate", json={"prime": "the", "length": 2000, "seed": 0, "stop": "."}).json()
    assert out["text"].endswith(".") and out["text"].count(".") == 1 and out["tokens"] < 2000


def test_stream_sends_each_token_then_done(client):
    body = {"prime": "a cat", "length": 60, "seed": 3, "stream": True, "candidates": 2}
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = events_of(response.text)
    kinds = [k for k, _ in events]
    assert kinds == ["token"] * 60 + ["done"]
    text = "".join(e["text"] for k, e in events if k == "token")
    assert events[-1][1]["text"] == text and events[-1][1]["tokens"] == 60
    plain = client.post("/v1/generate", json=body | {"stream": False, "candidates": 0}).json()
    assert plain["text"] == text  # streaming changes nothing but the delivery
    assert all(len(e["candidates"]) == 2 for k, e in events if k == "token")


def test_acrostic_poem(client):
    out = client.post("/v1/generate", json={"acrostic": "春夜", "line_chars": 5, "seed": 0}).json()
    lines = out["text"].replace("，", "\n").replace("。", "\n").split()
    assert [line[0] for line in lines] == ["春", "夜"] and all(len(line) == 5 for line in lines)


def test_score_agrees_with_a_forward_pass(client, run):
    text = 'he said "the cat"'
    out = client.post("/v1/score", json={"text": text, "top": 3}).json()
    assert out["tokens"] == list(text) and out["scored"] == len(text) - 1
    assert out["probabilities"][0] is None and len(out["probabilities"]) == len(text)
    loaded = load_lm(run)
    ids = torch.tensor(loaded.vocab.encode(text).tolist())[None]
    with torch.no_grad():
        logits, _ = loaded.model(ids)
    logp = torch.log_softmax(logits[0, :-1], -1).gather(1, ids[0, 1:, None])[:, 0]
    assert math.isclose(out["nats_per_token"], float(-logp.mean()), rel_tol=1e-4)
    assert np.allclose(out["probabilities"][1:], logp.exp().numpy(), atol=1e-5)
    assert math.isclose(out["perplexity"], math.exp(out["nats_per_token"]), rel_tol=1e-9)
    assert all(len(c) == 3 for c in out["candidates"][1:])


def test_inspect_grid_and_features(client, run):
    text = 'he said "the cat (and dog) ran" home.\nthe mat\n'
    out = client.post("/v1/inspect", json={"text": text, "units": [0, 5], "top": 3}).json()
    units, tokens = out["units"], out["tokens"]
    assert tokens == list(text) and out["state"] == "c" and out["layer"] == out["layers"] - 1
    grid = np.frombuffer(base64.b64decode(out["activations_int8"]), dtype=np.int8).reshape(len(tokens), units)
    exact = xray.activations(load_lm(run).model, load_lm(run).vocab, text).values
    assert np.abs(grid / 127 - exact).max() <= 0.5 / 127 + 1e-6
    assert np.allclose(out["activations"]["5"], exact[:, 5], atol=1e-4)
    features = {f["name"]: f for f in out["features"]}
    assert set(features) == {"in_quotes", "bracket_depth", "line_position", "newline_next"}
    assert all(f["varies"] and len(f["units"]) == 3 for f in features.values())
    # the reported r is the Pearson correlation of that unit with the feature
    quotes = xray.FEATURES["in_quotes"][1](tokens)
    best = features["in_quotes"]["units"][0]
    r = np.corrcoef(exact[:, best["unit"]], quotes)[0, 1]
    assert math.isclose(best["r"], r, abs_tol=1e-3)
    with np.errstate(invalid="ignore", divide="ignore"):  # a unit that never moves has no r
        every = [abs(np.nan_to_num(np.corrcoef(exact[:, u], quotes)[0, 1])) for u in range(units)]
    assert abs(best["r"]) >= max(every) - 1e-3
    h = client.post("/v1/inspect", json={"text": text, "state": "h"}).json()
    assert h["state"] == "h" and h["activations_int8"] != out["activations_int8"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v1/generate", {"model": "nope"}, 404, "no model named 'nope'"),
        ("/v1/generate", {"length": MAX_LENGTH + 1}, 422, "length"),
        ("/v1/generate", {"prime": "x" * (MAX_TEXT + 1)}, 422, "prime"),
        ("/v1/generate", {"temperature": -0.5}, 422, "temperature"),
        ("/v1/generate", {"top_p": 0}, 422, "top_p"),
        ("/v1/generate", {"surprise": 1}, 422, "surprise"),
        ("/v1/generate", {"acrostic": "猫狗"}, 400, "not in the model's vocabulary"),
        ("/v1/score", {"text": "x"}, 422, "text"),
        ("/v1/score", {}, 422, "text"),
        ("/v1/inspect", {"text": "the cat", "layer": 5}, 400, "layers"),
        ("/v1/inspect", {"text": "the cat", "units": [10_000]}, 400, "units"),
        ("/v1/inspect", {"text": "the cat", "state": "q"}, 422, "state"),
    ],
)
def test_bad_requests_get_a_4xx_json_message(client, path, body, status, message):
    response = client.post(path, json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error and "\n" not in error


def test_body_limits_and_bad_json(run):
    with TestClient(create_app(ServeConfig(runs=[str(run)], max_body=1_000)), base_url=LOOPBACK) as c:
        big = c.post("/v1/generate", json={"prime": "x" * 2_000})
        assert big.status_code == 413 and "1,000 bytes" in big.json()["error"]
        bad = c.post("/v1/generate", content=b"{nope", headers={"content-type": "application/json"})
        assert bad.status_code == 422 and bad.json()["error"].startswith("body: not valid JSON")
        body = iter([b'{"text": "ab"}'])  # a generator: sent chunked, without a Content-Length
        chunked = c.post("/v1/score", content=body, headers={"content-type": "application/json"})
        assert chunked.status_code == 411


def test_runs_are_checked_when_the_app_is_made(run, tmp_path):
    with pytest.raises(UsageError, match="two runs are named"):
        create_app(ServeConfig(runs=[str(run), f"{run.name}={run}"]))
    with pytest.raises(CheckpointError):
        create_app(ServeConfig(runs=[str(tmp_path)]))
    with pytest.raises(UsageError, match="at least one"):
        create_app(ServeConfig(runs=[]))


@pytest.fixture(scope="module")
def server(run):
    with live_server(create_app(ServeConfig(runs=[str(run)]))) as url:
        yield url


def test_a_long_generation_does_not_block_other_requests(server):
    import httpx2

    finished = threading.Event()
    answered_while_busy = []

    def long_request():
        body = {"prime": "the", "length": MAX_LENGTH, "seed": 0}
        httpx2.post(f"{server}/v1/generate", json=body, timeout=120).raise_for_status()
        finished.set()

    worker = threading.Thread(target=long_request)
    worker.start()
    time.sleep(0.3)  # let it start
    for _ in range(5):
        assert httpx2.get(f"{server}/healthz", timeout=30).json()["status"] == "ok"
        quick = httpx2.post(f"{server}/v1/generate", json={"prime": "a", "length": 5}, timeout=30)
        assert quick.status_code == 200
        answered_while_busy.append(not finished.is_set())
    worker.join()
    assert finished.is_set() and all(answered_while_busy)


def test_real_server_streams_events(server):
    import httpx2

    body = {"prime": "the", "length": 300, "seed": 0, "stream": True}
    chunks = []
    with httpx2.stream("POST", f"{server}/v1/generate", json=body, timeout=60) as response:
        assert response.status_code == 200
        chunks = list(response.iter_text())
    events = events_of("".join(chunks))
    assert len(events) == 301 and events[-1][0] == "done"
    assert len(chunks) > 1  # delivered in pieces, not as one body at the end


# -------------------------------------------------------------------------------------------------
# inspect and plot on the command line


def test_inspect_writes_a_self_contained_report(run, tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_text('he said "the (cat)" home.\n' * 10, encoding="utf-8")
    out = tmp_path / "report.html"
    assert main(["inspect", str(run), str(text), "--out", str(out), "--max-chars", "120"]) == 0
    printed = capsys.readouterr().out
    assert "120 tokens" in printed and "in_quotes: unit" in printed
    page = out.read_text(encoding="utf-8")
    assert "RnnkitXray.renderActivations" in page and "/static/" not in page  # nothing fetched
    data = page.split('<script id="inspection" type="application/json">')[1].split("</script>")[0]
    found = json.loads(data)
    assert len(found["tokens"]) == 120 and found["units"] == 32
    assert main(["inspect", str(run), str(tmp_path / "missing.txt")]) == 3
    assert main(["inspect", str(run), str(text), "--layer", "7"]) == 2
    assert "layers" in capsys.readouterr().err


def test_plot_draws_the_curves(run, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert main(["plot", str(run), "--out", str(out)]) == 0
    assert "train_loss" in capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(tmp_path)]) == 4
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_serve_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path)]) == 4
    assert main(["serve", str(tmp_path), "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.count("rnnkit: error:") == 2 and "Traceback" not in err
