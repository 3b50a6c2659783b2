"""A tiny trained captioner of generated shapes, shared by tests/test_caption.py and
tests/test_cli_caption.py.

Session-scoped and imported by tests/conftest.py, so the run trains once however many files use it (a
fixture imported into two test modules would run once in each).
"""

from __future__ import annotations

import pytest

from rnnkit.cli import main


@pytest.fixture(scope="session")
def shapes_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("caption")
    assert main(["caption", "make-shapes", str(tmp / "shapes"), "--n", "60", "--size", "32"]) == 0
    run = tmp / "run"
    args = ["caption", "train", str(tmp / "shapes" / "images"), str(tmp / "shapes" / "captions.csv")]
    args += ["--out", str(run), "--max-steps", "40", "--eval-interval", "20", "--image-size", "32"]
    args += [
        "--cnn-width",
        "4",
        "--hidden-size",
        "32",
        "--batch-size",
        "16",
        "--quiet",
        "--set",
        "data.min_count=1",
    ]
    assert main(args) == 0
    return tmp / "shapes", run
