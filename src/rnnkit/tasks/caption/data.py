"""Pictures and their captions: Flickr8k-style CSV (``image,caption``) or Karpathy's JSON layout, the
word vocabulary, and the split by picture (never by caption).

Pictures of any size and mode (RGB, L, P, RGBA, PNG or JPEG) become ``(3, S, S)`` uint8 tensors the
same way every time: transparent parts composited on white, the shorter side scaled to ``S``
(bicubic), the centre ``S x S`` cut out.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.files import read_text_file
from rnnkit.data.vocab import Specials, TokenTable
from rnnkit.errors import DataError
from rnnkit.tasks.caption.config import CaptionConfig

SPECIALS = Specials(pad="<pad>", start="<start>", end="<end>", unk="<unk>")
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def load_image(path: Path | bytes, size: int) -> Tensor:
    """``(3, size, size)`` uint8 of a picture file, named by its path or given as its content (bytes of
    a PNG or JPEG, an upload: decoded in memory); a :class:`DataError` naming the file (or "the image")
    when it is not a picture."""
    from PIL import Image, UnidentifiedImageError

    source: Path | io.BytesIO
    if isinstance(path, bytes | bytearray | memoryview):
        source, path = io.BytesIO(bytes(path)), Path("the image")
    else:
        source = path = Path(path)
    try:
        with Image.open(source) as opened:
            opened.load()
            image: Image.Image = opened
            if image.mode in ("RGBA", "LA", "P") and (image.mode != "P" or "transparency" in image.info):
                rgba = image.convert("RGBA")
                image = Image.new("RGB", rgba.size, (255, 255, 255))
                image.paste(rgba, mask=rgba.getchannel("A"))
            image = image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: no such image") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).split(":")[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a readable image ({reason})") from None
    w, h = image.size
    scale = size / min(w, h)
    resized = image.resize(
        (max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC
    )
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    crop = resized.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(crop, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def words(caption: str) -> list[str]:
    """Lower-cased words; punctuation is dropped."""
    return WORD.findall(caption.lower())


@dataclass
class Captions:
    images: list[str]
    """Image file names, each once, in file order."""
    captions: dict[str, list[str]]
    """Every caption of each image."""


def read_captions(path: Path) -> Captions:
    """A CSV with the columns ``image,caption`` (a header row, several rows per image), or Karpathy's
    ``dataset_*.json`` (``{"images": [{"filename", "sentences": [{"raw"}]}]}``)."""
    path = Path(path)
    text = read_text_file(path, what="a captions file")
    captions: dict[str, list[str]] = {}
    if path.suffix.lower() == ".json":
        try:
            for entry in json.loads(text)["images"]:
                name = entry["filename"]
                captions.setdefault(name, []).extend(s["raw"] for s in entry["sentences"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not Karpathy's captions JSON ({type(exc).__name__}: {exc})") from None
    else:
        rows = csv.reader(io.StringIO(text))
        header = next(rows, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["image", "caption"]:
            raise DataError(f"{path}:1: expected the header 'image,caption', got {','.join(header or [])!r}")
        for number, row in enumerate(rows, 2):
            if not row:
                continue
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise DataError(f"{path}:{number}: expected 'image,caption', got {','.join(row)!r}")
            captions.setdefault(row[0].strip(), []).append(",".join(row[1:]).strip())
    if not captions:
        raise DataError(f"{path}: no captions")
    return Captions(list(captions), captions)


def word_table(tokens: list[str]) -> TokenTable:
    """The captioner's words as its checkpoint lists them (``<pad>`` 0, ``<start>`` 1, ``<end>`` 2,
    ``<unk>`` 3, then the words); decoded words are joined by spaces."""
    return TokenTable(tokens, SPECIALS, sep=" ")


def build_words(captions: list[str], min_count: int = 1) -> TokenTable:
    """The words of ``captions`` seen ``min_count`` times or more, by falling count, after the specials."""
    return TokenTable.build((words(c) for c in captions), SPECIALS, min_count, sep=" ")


def caption_ids(vocab: TokenTable, caption: str) -> list[int]:
    """The ids of a caption's words; a word the table lacks is ``<unk>``."""
    return vocab.encode(words(caption))


# -------------------------------------------------------------------------------------------------
# the split by picture


@dataclass
class Split:
    names: list[str]
    images: Tensor
    """``(N, 3, S, S)`` uint8, one per picture."""
    references: list[list[str]]
    """Every caption of each picture."""


def split_pictures(
    captions: Captions, val: float, test: float, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """(train, validation, test) picture names: the split is by picture (seeded), never by caption."""
    names = list(captions.images)
    if len(names) < 3:
        raise DataError(
            f"need at least 3 pictures to split into train, validation and test; got {len(names)}"
        )
    order = names[:]
    random.Random(seed).shuffle(order)
    n_test = max(1, round(len(order) * test))
    n_val = max(1, round(len(order) * val))
    test_set, val_set = set(order[:n_test]), set(order[n_test : n_test + n_val])
    pick = lambda keep: [n for n in names if n in keep]  # noqa: E731
    return [n for n in names if n not in test_set and n not in val_set], pick(val_set), pick(test_set)


def load_split(folder: Path, names: list[str], captions: Captions, size: int) -> Split:
    images = (
        torch.stack([load_image(Path(folder) / n, size) for n in names])
        if names
        else torch.zeros(0, 3, size, size)
    )
    return Split(names, images, [captions.captions[n] for n in names])


def normalised(caption: str) -> str:
    """A caption as the model writes them: lower-case words, no punctuation."""
    return " ".join(words(caption))


def prepare(config: CaptionConfig) -> tuple[Captions, list[str], list[str], list[str]]:
    d = config.data
    captions = read_captions(Path(d.captions))
    folder = Path(d.images)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of pictures")
    missing = [n for n in captions.images if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{folder / missing[0]}: no such image ({len(missing)} named in {d.captions} are missing)"
        )
    return (captions, *split_pictures(captions, d.val_fraction, d.test_fraction, config.train.seed))
