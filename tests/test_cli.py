import json
import subprocess
import sys

import pytest
from tests.helpers import text_corpus

from rnnkit.cli import main

TINY = ["--preset", "tiny", "--precision", "fp32", "--device", "cpu", "--quiet"]


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


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


def test_help_lists_every_command_with_what_it_does(capsys, monkeypatch):
    import typer

    from rnnkit.cli import app

    monkeypatch.setenv("COLUMNS", "200")  # a narrow help box cuts long lines short
    groups = {(): typer.main.get_command(app)}
    while groups:
        words, group = groups.popitem()
        code, out, _ = run_cli(capsys, *words, "--help")
        text = " ".join(out.replace("│", " ").split())
        assert code == 0 and len(group.commands) >= 2
        for name, command in group.commands.items():
            summary = (command.help or "").split("\n")[0].split(".")[0]
            assert summary and f"{name} {summary}" in text, (words, name)  # listed, with its first line
            if hasattr(command, "commands"):
                groups[(*words, name)] = command
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0 and "--hidden-size" in out and "Examples" in out


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


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["train", "--preset", "huge"], 2, "--preset"),
        (["train", "--lr", "-1", "--preset", "tiny"], 2, "lr"),
        (["train", "--set", "train.nope=1"], 2, "unknown config key"),
        (["train", "--set", "train.batch_size=many"], 2, "expected an integer"),
        (["train", "/no/such/file.txt", "--preset", "tiny"], 3, "no such file"),
        (["sample", "/no/such/run"], 4, "no such run folder"),
        (["sample", "."], 4, "manifest.json"),
        (["train", "--bogus-flag"], 2, "bogus"),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code(args, code, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got, _, err = run_cli(capsys, *args)
    assert got == code
    assert err.startswith("rnnkit: error:") and message in err and err.count("\n") == 1
    assert "Traceback" not in err


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


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit", "eval", str(tmp_path), str(tmp_path / "x.txt")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 4
    assert proc.stderr.startswith("rnnkit: error:") and "Traceback" not in proc.stderr
