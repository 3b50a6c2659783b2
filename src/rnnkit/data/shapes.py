"""A synthetic captioning set: pictures of one or two coloured shapes, and sentences that say what is
where ("a small red circle left of a large blue square").

Written as ``OUT/images/*.png`` and ``OUT/captions.csv`` (``image,caption``, two captions per image), the
same layout as Flickr8k, so every captioning command reads it like real data. What a caption says is
fully decided by the picture, so a captioner that works must get it right: it proves the pipeline learns
when the data allows it.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.11, "large": 0.2}  # half-width as a share of the picture's side


@dataclass
class Shape:
    colour: str
    shape: str
    size: str
    x: float
    y: float

    def words(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


def draw(shapes: list[Shape], size: int):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (245, 245, 240))
    pen = ImageDraw.Draw(image)
    for s in shapes:
        r = SIZES[s.size] * size
        cx, cy = s.x * size, s.y * size
        fill = COLOURS[s.colour]
        if s.shape == "circle":
            pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif s.shape == "square":
            pen.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
        else:
            pen.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    return image


def scene(rng: random.Random) -> tuple[list[Shape], list[str]]:
    """Shapes and two captions that describe them."""

    def pick(x: float) -> Shape:
        return Shape(
            rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(list(SIZES)), x, rng.uniform(0.3, 0.7)
        )

    if rng.random() < 0.3:
        where = rng.choice(["left", "middle", "right"])
        one = pick({"left": 0.25, "middle": 0.5, "right": 0.75}[where] + rng.uniform(-0.04, 0.04))
        place = "in the middle" if where == "middle" else f"on the {where}"
        return [one], [f"a {one.words()} {place}", f"{place} there is a {one.words()}"]
    left, right = pick(rng.uniform(0.22, 0.3)), pick(rng.uniform(0.7, 0.78))
    return [left, right], [
        f"a {left.words()} left of a {right.words()}",
        f"a {right.words()} right of a {left.words()}",
    ]


def make_shapes(out: Path, n: int, size: int = 64, seed: int = 0) -> Path:
    """Write ``n`` pictures and their captions under ``out``; returns the captions file."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    captions = out / "captions.csv"
    with open(captions, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption"])
        for i in range(n):
            shapes, texts = scene(rng)
            name = f"shape_{i:05d}.png"
            draw(shapes, size).save(out / "images" / name)
            writer.writerows([name, t] for t in texts)
    return captions


def content_words(text: str, sizes: bool = False) -> list[str]:
    """The colour and shape words of a caption (and its size words with ``sizes``), in order."""
    keep = set(COLOURS) | set(SHAPES) | (set(SIZES) if sizes else set())
    return [w for w in text.split() if w in keep]


def words_right(hypothesis: str, references: list[str], sizes: bool = False) -> bool:
    """Every colour and shape word right (and size word, with ``sizes``): the caption names the same
    shapes in the order of one of the references."""
    found = content_words(hypothesis, sizes)
    return any(found == content_words(r, sizes) for r in references)
