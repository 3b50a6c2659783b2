"""``rnnkit speech``: train, eval and transcribe end to end on a tiny model, and the refusals
(``cli/speech.py``). The trained run is the session fixture ``speech_run`` (tests/fixtures_speech.py)."""

from __future__ import annotations

import json

from rnnkit.cli import main


def test_cli_trains_evaluates_and_transcribes(speech_run, small_fsdd, tmp_path, capsys):
    capsys.readouterr()
    assert main(["speech", "eval", str(speech_run), str(small_fsdd), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["recordings"] == 30 and result["split"] == "test"
    assert 0 <= result["accuracy"] <= 1 and result["cer"] >= 0
    assert main(["speech", "eval", str(speech_run), str(small_fsdd), "--json", "--decoder", "ctc"]) == 0
    assert json.loads(capsys.readouterr().out)["decoder"] == "ctc"
    files = [str(small_fsdd / "1_theo_0.wav"), str(small_fsdd / "2_jackson_3.wav")]
    plot = tmp_path / "attention.png"
    assert main(["speech", "transcribe", str(speech_run), *files, "--beam", "3", "--plot", str(plot)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == files
    assert all(set(line.split("\t")[1]) <= set("zeroonetwo") for line in lines)  # only letters it learnt
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_cli_refuses_what_it_cannot_do(speech_run, small_fsdd, tmp_path, capsys):
    assert (
        main(
            ["speech", "train", str(small_fsdd), "--out", str(tmp_path / "x"), "--holdout-speaker", "nobody"]
        )
        == 2
    )
    assert main(["speech", "train", str(tmp_path / "nothing"), "--out", str(tmp_path / "y")]) == 3
    assert main(["speech", "eval", str(speech_run), str(small_fsdd), "--split", "dev"]) == 2
    err = capsys.readouterr().err
    assert err.count("rnnkit: error:") == 3 and "Traceback" not in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
