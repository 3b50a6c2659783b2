"""The app as a whole (``cli/__init__.py``): every command listed in the help, bad input as one line
with its exit code, the console script. Each command group has its own tests/test_cli_<group>.py."""

import subprocess
import sys

import pytest
from tests.helpers import run_cli


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


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit", "eval", str(tmp_path), str(tmp_path / "x.txt")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 4
    assert proc.stderr.startswith("rnnkit: error:") and "Traceback" not in proc.stderr
