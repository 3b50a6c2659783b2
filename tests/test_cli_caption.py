"""``rnnkit caption``: train, eval and predict end to end on generated shapes, and bad pictures and
files (``cli/caption.py``). The trained run is the session fixture ``shapes_run``
(tests/fixtures_caption.py)."""

from __future__ import annotations

import json

from rnnkit.cli import main
from rnnkit.tasks.caption import load_captioner


def test_cli_trains_evaluates_and_predicts(shapes_run, tmp_path, capsys):
    shapes, run = shapes_run
    capsys.readouterr()
    grid = tmp_path / "grid.png"
    args = ["caption", "eval", str(run), str(shapes / "images"), str(shapes / "captions.csv"), "--json"]
    assert main([*args, "--baselines", "--shape-words", "--grid", str(grid), "--beam", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pictures"] == 6 and result["split"] == "test"
    assert all(0 <= result[f"bleu{n}"] <= 100 for n in range(1, 5))
    assert set(result["most_common"]) == {"bleu1", "bleu2", "bleu3", "bleu4"} and "nearest_picture" in result
    assert 0 <= result["shape_words_right"] <= 1 and grid.read_bytes()[:4] == b"\x89PNG"
    pics = sorted((shapes / "images").iterdir())[:2]
    assert main(["caption", "predict", str(run), *map(str, pics)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in pics]
    loaded = load_captioner(run)
    assert set(" ".join(loaded.describe(pics)).split()) <= set(loaded.vocab.tokens)


def test_cli_names_bad_pictures_and_files(shapes_run, tmp_path, capsys):
    shapes, run = shapes_run
    (tmp_path / "broken.png").write_text("nope")
    assert main(["caption", "predict", str(run), str(tmp_path / "broken.png")]) == 3
    assert (
        main(
            [
                "caption",
                "train",
                str(shapes / "images"),
                str(tmp_path / "none.csv"),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 3
    )
    err = capsys.readouterr().err
    assert err.count("rnnkit: error:") == 2 and "broken.png" in err and "none.csv" in err
    assert not (tmp_path / "r").exists()
