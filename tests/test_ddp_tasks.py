"""Two-process DDP on CPU (gloo) for every task beside the char-RNN (tests/test_ddp.py): through the one
runner, each rank trains on its share of every global batch; the ranks end with identical parameters and
buffers, equal to one process trained on the same global batch (the captioner's batch norm included:
it normalises over the global batch under DDP, see train/distributed.py)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from tests.helpers import spawned_rank
from tests.test_ddp import free_port

from rnnkit.tasks import TASKS
from rnnkit.train.run import train

STEPS = 8
ROWS = 4
"""Rows per rank: the single process trains on 2 x ROWS."""


def fast(train, batch_size: int) -> None:
    train.batch_size, train.max_steps, train.max_minutes = batch_size, STEPS, 0.0
    train.eval_interval = train.checkpoint_interval = STEPS // 2
    train.device, train.precision, train.threads = "cpu", "fp32", 1


def classify_config(folder: Path):
    from rnnkit.tasks.classify import ClassifierConfig

    rng = random.Random(0)
    lines = ["label\tsentence"]
    for _ in range(64):
        label = rng.randint(0, 1)
        words = [rng.choice(["the", "movie", "was", "plot", "and"]) for _ in range(rng.randint(3, 9))]
        words.insert(
            rng.randrange(len(words) + 1), rng.choice(["good", "great"] if label else ["bad", "dull"])
        )
        lines.append(f"{label}\t{' '.join(words)}")
    (folder / "train.tsv").write_text("\n".join(lines) + "\n")
    config = ClassifierConfig()
    config.data.train = str(folder / "train.tsv")
    config.model.hidden_size, config.model.embedding_size, config.model.dropout = 16, 16, 0.0
    return config


def tag_config(folder: Path):
    from rnnkit.tasks.tag import TaggerConfig

    rng = random.Random(0)
    words = ["上海", "体育局", "召开", "会议", "我们", "今天", "学习", "了", "的", "新"]
    text = "\n".join("  ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(64))
    (folder / "train.txt").write_text(text)
    config = TaggerConfig()
    config.data.train, config.data.format = str(folder / "train.txt"), "segmented"
    config.model.hidden_size, config.model.dropout, config.model.bigram_size = 16, 0.0, 8
    config.data.bigram_min_count = 1
    return config


def forecast_config(folder: Path):
    from rnnkit.tasks.forecast import ForecastConfig

    lines = ['"Month","Passengers"']
    for i in range(144):
        value = (100 + 2 * i) * (1 + 0.2 * np.sin(2 * np.pi * i / 12))
        lines.append(f'"{1949 + i // 12}-{i % 12 + 1:02d}",{value:.3f}')
    (folder / "air.csv").write_text("\n".join(lines) + "\n")
    config = ForecastConfig()
    config.data.path, config.data.column, config.data.window = str(folder / "air.csv"), "Passengers", 12
    config.model.hidden_size = 16
    return config


def speech_config(folder: Path):
    from tests.conftest import data_dir

    from rnnkit.tasks.speech import SpeechConfig

    recordings = data_dir() / "fsdd" / "recordings"
    if not recordings.is_dir():
        pytest.fail(f"the FSDD recordings are missing under {recordings.parent}; set RNNKIT_DATA")
    (folder / "wav").mkdir()
    for digit in (0, 1):
        for index in range(8):
            name = f"{digit}_jackson_{index}.wav"
            shutil.copy(recordings / name, folder / "wav" / name)
    config = SpeechConfig()
    config.data.wav_dir, config.data.augment = str(folder / "wav"), True  # masks drawn per row
    config.model.listener_size, config.model.speller_size, config.model.dropout = 16, 32, 0.0
    config.model.attention_size, config.model.ctc_weight = 16, 0.2
    return config


def caption_config(folder: Path):
    from rnnkit.data.shapes import make_shapes
    from rnnkit.tasks.caption import CaptionConfig

    captions = make_shapes(folder / "shapes", 24, size=32, seed=3)
    config = CaptionConfig()
    config.data.images, config.data.captions, config.data.min_count = (
        str(folder / "shapes" / "images"),
        str(captions),
        1,
    )
    config.data.flip = True  # drawn for the global batch
    m = config.model
    m.image_size, m.cnn_width, m.image_feature_size, m.hidden_size, m.embedding_size, m.dropout = (
        32,
        8,
        32,
        32,
        16,
        0.0,
    )
    return config


def ensemble_config(folder: Path):
    """Two members, each pre-trained as a language model first: every stage through the one runner."""
    config = classify_config(folder)
    config.members = 2
    config.pretrain.steps, config.pretrain.eval_interval = 4, 2
    return config


CONFIGS = {
    "classify": classify_config,
    "classify-ensemble": ensemble_config,
    "tag": tag_config,
    "forecast": forecast_config,
    "speech": speech_config,
    "caption": caption_config,
}


def _dumper(path: Path):
    def dump(trainer):
        if trainer.step == STEPS:
            save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, path)

    return dump


def _rank(rank: int, world: int, port: int, name: str, config, out: str) -> None:
    with spawned_rank(rank, world, port):
        torch.set_num_threads(1)
        dump = _dumper(Path(out) / f"rank{rank}.safetensors")
        train(TASKS[name.split("-")[0]], config, Path(out) / "run", on_step=dump)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_ranks_stay_identical_and_equal_one_process(tmp_path, name):
    config = CONFIGS[name](tmp_path)
    fast(config.train, ROWS)
    mp.spawn(_rank, args=(2, free_port(), name, config, str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key  # DDP: the same averaged gradient everywhere

    fast(config.train, 2 * ROWS)  # one process, the same global batch
    train(
        TASKS[name.split("-")[0]],
        config,
        tmp_path / "single",
        on_step=_dumper(tmp_path / "single.safetensors"),
    )
    single = load_file(tmp_path / "single.safetensors")
    assert single.keys() == rank0.keys()
    for key in single:
        torch.testing.assert_close(rank0[key], single[key], rtol=0, atol=5e-5, msg=key)
    if name == "classify-ensemble":  # the last member's weights were dumped; rank 0 wrote the record
        assert (tmp_path / "run" / "ensemble.json").is_file()
        assert (tmp_path / "run" / "member-2" / "pretrain" / "ckpt-000004").is_dir()  # its pre-training
        return
    checkpoints = sorted((tmp_path / "run").glob("ckpt-*"))
    assert checkpoints and checkpoints[-1].name == f"ckpt-{STEPS:06d}"  # rank 0 wrote the run
