"""The char-RNN commands: ``rnnkit train``, ``sample`` and ``eval``, resume and the run-folder guards
(``cli/lm.py``)."""

from __future__ import annotations

import json

import pytest
from tests.helpers import run_cli, text_corpus

from rnnkit.cli import main

TINY = ["--preset", "tiny", "--precision", "fp32", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    source = text_corpus(tmp / "t.txt", 12_000)
    assert (
        main(
            [
                "train",
                str(source),
                "--out",
                str(tmp / "run"),
                *TINY,
                "--max-steps",
                "30",
                "--sample-length",
                "0",
            ]
        )
        == 0
    )
    return tmp / "run", source


def test_sample_is_reproducible_and_streams(trained, capsys):
    run, _ = trained
    code, a, _ = run_cli(capsys, "sample", run, "--prime", "the ", "--length", "80", "--seed", "3")
    code2, b, _ = run_cli(capsys, "sample", run, "--prime", "the ", "--length", "80", "--seed", "3")
    assert code == code2 == 0 and a == b and a.startswith("the ") and len(a) == len("the ") + 80 + 1


def test_sample_stop_string_and_num_samples(trained, capsys):
    run, _ = trained
    code, out, _ = run_cli(
        capsys,
        "sample",
        run,
        "--length",
        "300",
        "--seed",
        "1",
        "--stop",
        "\n",
        "--num-samples",
        "2",
        "--prime",
        "a",
    )
    assert code == 0 and out.count("--- sample") == 2
    first = out.split("--- sample 2 ---")[0].split("--- sample 1 ---\n")[1]
    assert first.count("\n") <= 2


def test_unknown_prime_characters_are_named(trained, capsys):
    run, _ = trained
    code, _out, err = run_cli(capsys, "sample", run, "--prime", "the 猫", "--length", "5", "--seed", "0")
    assert code == 0
    assert "lacks these prime characters: '猫' (U+732B)" in err and "'t'" not in err


def test_eval_json_reports_all_three_figures(trained, capsys):
    run, source = trained
    code, out, _ = run_cli(capsys, "eval", run, source, "--json")
    assert code == 0
    row = json.loads(out.strip())
    assert row["nats_per_char"] > 0
    assert row["bits_per_char"] == pytest.approx(row["nats_per_char"] / 0.6931471805599453)
    assert row["perplexity"] == pytest.approx(2.718281828459045 ** row["nats_per_char"])


def test_resume_extends_a_run(trained, capsys, tmp_path):
    run, _ = trained
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    code, _, _ = run_cli(capsys, "train", "--resume", copy, "--max-steps", "40", "--quiet")
    assert code == 0
    assert json.loads((copy / "manifest.json").read_text())["last"] == "ckpt-000040"


def test_tiny_corpus_fails_clearly_unless_a_batch_fits(tmp_path, capsys):
    source = tmp_path / "small.txt"
    source.write_text(("hello world. " * 20)[:200])
    code, _, err = run_cli(
        capsys, "train", source, "--out", tmp_path / "a", *TINY, "--batch-size", "32", "--seq-len", "64"
    )
    assert code == 3 and err.startswith("rnnkit: error: the corpus is too small") and err.count("\n") == 1
    code, _, err = run_cli(
        capsys,
        "train",
        source,
        "--out",
        tmp_path / "b",
        *TINY,
        "--batch-size",
        "2",
        "--seq-len",
        "8",
        "--max-steps",
        "5",
    )
    assert code == 0, err


def test_existing_run_folder_is_not_replaced_without_force(trained, capsys):
    run, source = trained
    before = (run / "manifest.json").read_bytes()
    code, _, err = run_cli(capsys, "train", source, "--out", run, *TINY)
    assert code == 2 and "--resume" in err and "--force" in err
    assert (run / "manifest.json").read_bytes() == before


def test_force_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    source = text_corpus(tmp_path / "t.txt", 5000)
    code, _, _err = run_cli(capsys, "train", source, "--out", precious, "--force", *TINY)
    assert code == 2 and (precious / "thesis.tex").read_text() == "years of work"


def test_sample_help_says_what_an_empty_prime_does(capsys):
    assert main(["sample", "--help"]) == 0
    assert "An empty prime starts as after a line break" in " ".join(
        capsys.readouterr().out.replace("│", " ").split()
    )
