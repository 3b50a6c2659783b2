"""The FSDD recordings and a tiny trained speech run, shared by tests/test_speech.py and
tests/test_cli_speech.py.

Session-scoped and imported by tests/conftest.py, so the run trains once however many files use it (a
fixture imported into two test modules would run once in each).
"""

from __future__ import annotations

import shutil

import pytest

from rnnkit.cli import main


@pytest.fixture(scope="session")
def fsdd(shared_data_path):
    return shared_data_path / "fsdd" / "recordings"


@pytest.fixture(scope="session")
def shared_data_path():
    from tests.conftest import data_dir

    path = data_dir()
    if not (path / "fsdd").is_dir():
        pytest.fail(f"the FSDD recordings are missing under {path}; set RNNKIT_DATA")
    return path


@pytest.fixture(scope="session")
def small_fsdd(fsdd, tmp_path_factory):
    """Three digits from two speakers: indices 0-4 are the test split, 5-11 train."""
    folder = tmp_path_factory.mktemp("fsdd")
    for digit in (0, 1, 2):
        for speaker in ("jackson", "theo"):
            for index in range(12):
                name = f"{digit}_{speaker}_{index}.wav"
                shutil.copy(fsdd / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def speech_run(small_fsdd, tmp_path_factory):
    run = tmp_path_factory.mktemp("speech") / "run"
    args = [
        "speech",
        "train",
        str(small_fsdd),
        "--out",
        str(run),
        "--max-steps",
        "60",
        "--eval-interval",
        "30",
    ]
    args += [
        "--listener-size",
        "16",
        "--speller-size",
        "32",
        "--batch-size",
        "8",
        "--quiet",
        "--ctc-weight",
        "0.2",
    ]
    assert main(args) == 0
    return run
