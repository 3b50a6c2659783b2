"""Captioning: pictures and captions files, the first-step picture, beam search, BLEU, evaluation
(the CLI: tests/test_cli_caption.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tests.reference_beam import caption_beam
from torch.nn import functional as F

from rnnkit.data.shapes import content_words, make_shapes, words_right
from rnnkit.errors import DataError, UsageError
from rnnkit.tasks.caption import (
    Captioner,
    CaptionModelConfig,
    bleu,
    build_backbone,
    build_words,
    caption_ids,
    load_captioner,
    load_image,
    read_captions,
    split_pictures,
    words,
)


def tiny_model(inject: str = "first-step", vocab: int = 12) -> Captioner:
    torch.manual_seed(0)
    config = CaptionModelConfig(
        embedding_size=8,
        hidden_size=16,
        image_size=32,
        cnn_width=4,
        image_feature_size=6,
        inject=inject,
        dropout=0.0,
    )
    return Captioner(vocab, config).eval()


def pictures(n: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


@pytest.mark.parametrize("inject", ["first-step", "every-step"])
def test_the_picture_reaches_later_words_only_through_the_state(inject):
    model = tiny_model(inject)
    images, ids = pictures(), torch.tensor([[1, 5, 6, 7], [1, 4, 4, 8], [1, 9, 5, 6]])
    v = model.features(images).detach().requires_grad_(True)
    logits, state = model.step(ids[:, 0], v, None, first=True)
    cut = type(state)(*(s.detach() for s in state))  # later words see the first step's state, not v
    later = []
    for t in range(1, ids.shape[1]):
        logits, cut = model.step(ids[:, t], v, cut, first=False)
        later.append(logits)
    grad = torch.autograd.grad(torch.stack(later).logsumexp(-1).sum(), v, allow_unused=True)[0]
    if inject == "first-step":
        assert grad is None or torch.all(grad == 0)  # nothing but the state carries the picture onward
    else:
        assert grad is not None and grad.abs().sum() > 0
    # and the first word does depend on the picture directly
    first, _ = model.step(ids[:, 0], v, None, first=True)
    assert torch.autograd.grad(first.sum(), v)[0].abs().sum() > 0


def test_the_grid_keeps_where_things_are():
    """Global average pooling keeps what is in a picture but barely where; the grid keeps both."""
    left = torch.full((1, 3, 64, 64), 240, dtype=torch.uint8)
    right = left.clone()
    left[..., 28:36, 12:20], right[..., 28:36, 44:52] = 30, 30  # the same dark square, moved
    change = {}
    for grid in (1, 4):
        torch.manual_seed(0)
        model = Captioner(10, CaptionModelConfig(grid_size=grid, cnn_width=8)).eval()
        with torch.no_grad():
            a, b = (model.pool(model.cnn((x.float() / 255 - 0.5) / 0.25)) for x in (left, right))
        assert a.shape == (1, 64 * grid * grid)
        change[grid] = float((a - b).norm() / a.norm())
    assert change[4] > 3 * change[1]


def test_the_bag_of_words_loss_targets_the_pictures_words():
    from rnnkit.tasks.caption import CaptionConfig, CaptionTask, Split

    refs = [["a red circle", "a red zebra"], ["a blue square"], ["a blue circle"]]
    vocab = build_words([c for r in refs for c in r], min_count=2)  # "zebra", "square" are <unk>
    config = CaptionConfig()
    config.model = CaptionModelConfig(embedding_size=8, hidden_size=16, image_size=32, cnn_width=4,
                                      image_feature_size=6, dropout=0.0)  # fmt: skip
    config.train.batch_size = 4
    task = CaptionTask(config, Split(["x", "y", "z"], pictures(3), refs), Split([], pictures(0), []), vocab)
    named = [{vocab.tokens[j] for j in row.nonzero().flatten().tolist()} for row in task.bags]
    assert named == [{"a", "red", "circle"}, {"a", "blue"}, {"a", "blue", "circle"}]  # no <unk>, <end>...
    batch, _ = task.next_batch()
    torch.manual_seed(0)
    with_bag = Captioner(len(vocab), config.model).eval()
    loss, _, _ = task.training_loss(with_bag, batch, None)
    config.model.word_loss = 0.0
    torch.manual_seed(0)
    without = Captioner(len(vocab), config.model).eval()
    assert without.bag is None
    plain, _, _ = task.training_loss(without, batch, None)
    bag = F.binary_cross_entropy_with_logits(with_bag.bag(with_bag.features(batch[0])), batch[4])
    torch.testing.assert_close(loss, plain + bag)  # the same decoder weights: the seed was reset


def test_teacher_forcing_equals_step_by_step():
    model = tiny_model()
    images, ids = pictures(2), torch.tensor([[1, 5, 6, 7], [1, 4, 8, 0]])
    full = model(images, ids, torch.tensor([4, 3]))
    v, state = model.features(images), None
    for t in range(4):
        logits, state = model.step(ids[:, t], v, state, first=t == 0)
        torch.testing.assert_close(logits[0], full[0, t], atol=1e-5, rtol=1e-5)
        if t < 3:
            torch.testing.assert_close(logits[1], full[1, t], atol=1e-5, rtol=1e-5)


def test_beam_of_one_is_greedy():
    model = tiny_model(vocab=9)
    images = pictures(4)
    greedy = model.greedy(images, max_words=8)
    for i in range(4):
        assert caption_beam(model, images[i : i + 1], 1, max_words=8)[0] == greedy[i]
    assert all(isinstance(t, int) for t in model.beams(images[:1], 3, max_words=8)[0])


def random_decoder(model: Captioner, seed: int, vocab: int = 9, width: int = 16) -> Captioner:
    """Give ``model`` a random recurrent decoder whose words depend strongly on the picture and on every
    earlier word (an untrained Captioner says nearly the same for every picture)."""
    g = torch.Generator().manual_seed(seed)
    embed, mix, out = (torch.randn(vocab, width, generator=g), torch.randn(width, width, generator=g) / 2,
                       torch.randn(width, vocab, generator=g) * 2)  # fmt: skip
    out[:, 2] += 0.3  # <end> now and then

    def features(images):
        return images.flatten(1)[:, :width] * 4

    def step(ids, v, state, first):
        h = torch.tanh((v if first else state[0]) @ mix + embed[ids])
        return h @ out, h[None]

    model.features, model.step = features, step
    return model


@pytest.mark.parametrize(("seed", "beam", "max_words"), [(0, 2, 8), (1, 3, 8), (2, 4, 6), (3, 3, 1)])
def test_batched_beam_search_equals_one_picture_at_a_time(seed, beam, max_words):
    model = random_decoder(tiny_model(vocab=9), seed)
    images = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    alone = [caption_beam(model, images[i : i + 1], beam, max_words=max_words)[0] for i in range(6)]
    assert model.beams(images, beam, max_words=max_words) == alone
    if max_words > 1:  # pictures whose search ended at different steps, in the same batch
        assert len({len(a) for a in alone}) > 1


def test_bleu_of_the_references_against_themselves_is_100():
    refs = [
        ["a red circle left of a blue square", "a blue square right of a red circle"],
        ["a big dog runs on the grass"],
    ]
    found = bleu([r[0] for r in refs], refs)
    assert all(found[f"bleu{n}"] == pytest.approx(100.0) for n in range(1, 5))
    worse = bleu(["a red square", "a cat sleeps"], refs)
    assert worse["bleu4"] < worse["bleu1"] < 100


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_any_picture_becomes_the_same_square(mode, fmt, tmp_path):
    if fmt == "JPEG" and mode in ("RGBA", "P"):
        mode = "RGB" if mode == "RGBA" else "L"
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (50, 80, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    path = tmp_path / f"pic.{fmt.lower()}"
    image.save(path, fmt)
    a, b = load_image(path, 32), load_image(path, 32)
    assert a.shape == (3, 32, 32) and a.dtype == torch.uint8 and torch.equal(a, b)


def test_unreadable_pictures_are_named(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(DataError, match=r"notes\.png: not a readable image"):
        load_image(tmp_path / "notes.png", 32)
    Image.new("RGB", (40, 40)).save(tmp_path / "cut.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "cut.jpg").read_bytes()[:60])
    with pytest.raises(DataError, match=r"cut\.jpg"):
        load_image(tmp_path / "cut.jpg", 32)
    with pytest.raises(DataError, match="no such image"):
        load_image(tmp_path / "gone.png", 32)


def test_captions_files_and_the_split_by_picture(tmp_path):
    csv_path = tmp_path / "captions.csv"
    csv_path.write_text(
        'image,caption\na.jpg,"A dog, running ."\na.jpg,a dog\nb.jpg,Two cats\n', encoding="utf-8"
    )
    found = read_captions(csv_path)
    assert found.images == ["a.jpg", "b.jpg"] and found.captions["a.jpg"] == ["A dog, running .", "a dog"]
    assert words("A dog, running .") == ["a", "dog", "running"]
    karpathy = tmp_path / "dataset.json"
    karpathy.write_text(json.dumps({"images": [{"filename": "c.jpg", "sentences": [{"raw": "A cat."}]}]}))
    assert read_captions(karpathy).captions == {"c.jpg": ["A cat."]}
    (tmp_path / "bad.csv").write_text("file,text\na.jpg,x\n")
    with pytest.raises(DataError, match=r"bad\.csv:1: expected the header"):
        read_captions(tmp_path / "bad.csv")
    captions_path = make_shapes(tmp_path / "shapes", 40, size=32, seed=3)
    shapes = read_captions(captions_path)
    assert len(shapes.images) == 40 and all(len(c) == 2 for c in shapes.captions.values())
    train, val, test = split_pictures(shapes, 0.1, 0.1, seed=0)
    assert (
        len(set(train) | set(val) | set(test)) == 40
        and not (set(train) & set(test))
        and not (set(val) & set(test))
    )
    vocab = build_words([c for n in train for c in shapes.captions[n]])
    assert vocab.tokens[:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    assert vocab.decode(caption_ids(vocab, "a red zebra")) == "a red <unk>"


def test_shape_words_are_checked_in_order():
    refs = [
        "a small red circle left of a large blue square",
        "a large blue square right of a small red circle",
    ]
    assert content_words(refs[0]) == ["red", "circle", "blue", "square"]
    assert words_right("a large red circle left of a small blue square", refs)
    assert not words_right("a large red circle left of a small blue square", refs, sizes=True)
    assert not words_right("a small red circle left of a large green square", refs)


def test_backbone_hook_with_a_stand_in_module(tmp_path):
    from tests.helpers import standin_cnn

    weights = tmp_path / "standin.pt"
    torch.save(standin_cnn().state_dict(), weights)
    net, size, spatial = build_backbone("tests.helpers:standin_cnn", str(weights), 32)
    assert (size, spatial) == (6, False)  # the classifier (fc, 1000 outputs) was taken off
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 6)
    with pytest.raises(UsageError, match=r"package\.module:factory"):
        build_backbone("resnet18", "", 32)
    with pytest.raises(UsageError, match="cannot import"):
        build_backbone("no_such_package.models:resnet18", "", 32)


# -------------------------------------------------------------------------------------------------
# evaluation


def test_evaluation_scores_the_pictures_the_run_held_out(shapes_run, tmp_path):
    """evaluate_captions, directly: the test (or validation) pictures are those the run's seed split off,
    every score is of the captions it returns, and the loaded run's config keeps its own paths."""
    import shutil
    from collections import Counter

    from rnnkit.tasks.caption import normalised
    from rnnkit.tasks.caption.metrics import evaluate_captions

    shapes, run = shapes_run
    moved = tmp_path / "shapes"  # the same pictures elsewhere: the run's config must not follow them
    shutil.copytree(shapes, moved)
    loaded = load_captioner(run)
    trained_on = (loaded.config.data.images, loaded.config.data.captions)
    captions = read_captions(moved / "captions.csv")
    d = loaded.config.data
    train, val, test = split_pictures(captions, d.val_fraction, d.test_fraction, loaded.config.train.seed)
    found = evaluate_captions(
        loaded, moved / "images", moved / "captions.csv", with_baselines=True, shape_words=True
    )
    assert found.names == test and found.scores["pictures"] == len(test) and found.scores["split"] == "test"
    assert found.captions == loaded.describe([moved / "images" / n for n in test])
    refs = [[normalised(c) for c in captions.captions[n]] for n in test]
    assert {f"bleu{n}": found.scores[f"bleu{n}"] for n in range(1, 5)} == bleu(found.captions, refs)
    common = Counter(normalised(c) for n in train for c in captions.captions[n]).most_common(1)[0][0]
    assert found.scores["most_common"] == bleu([common] * len(test), refs)
    right = [words_right(h, r) for h, r in zip(found.captions, refs, strict=True)]
    assert found.scores["shape_words_right"] == sum(right) / len(test)
    assert found.scores["examples"] == [
        {"image": n, "caption": c} for n, c in zip(test[:5], found.captions, strict=False)
    ]
    assert (loaded.config.data.images, loaded.config.data.captions) == trained_on
    held = evaluate_captions(loaded, moved / "images", moved / "captions.csv", split="val", beam=2)
    assert held.names == val and held.scores["beam"] == 2 and "most_common" not in held.scores
