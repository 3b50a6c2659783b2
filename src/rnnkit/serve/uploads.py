"""The files the upload endpoints take as their body: the Content-Type, the kind of file the bytes really
are, and the size the file's header declares (seconds of audio, pixels), all checked in memory before
anything decodes the whole file. Nothing here touches the file system.

Each check raises an ``HTTPException`` with the status the API promises: 415 for a Content-Type or a
file kind it cannot read, 413 for a file too large, 422 for a file whose content is broken.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable

from starlette.exceptions import HTTPException

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
WAV_RIFF = (b"RIFF", b"RIFX", b"RF64")
"""The first four bytes of a WAV file (little-endian, big-endian, 64-bit sizes); bytes 8-12 are WAVE."""


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def media_type(header: str | None) -> str:
    """The media type of a Content-Type header, without its parameters, in lower case."""
    return (header or "").partition(";")[0].strip().lower()


def check_type(header: str | None, accepted: Iterable[str]) -> str:
    """The request's media type, if it is one of ``accepted``; else 415."""
    given = media_type(header)
    names = sorted(accepted)
    if given not in names:
        shown = repr(given) if given else "none"
        raise HTTPException(415, f"Content-Type {shown} is not accepted here: send {' or '.join(names)}")
    return given


def nonempty(data: bytes, what: str) -> bytes:
    if not data:
        raise HTTPException(422, f"the body is empty: send the {what}'s bytes")
    return data


def is_wav(data: bytes) -> bool:
    return data[:4] in WAV_RIFF and data[8:12] == b"WAVE"


def audio_seconds(data: bytes, limit: float) -> float:
    """How long the WAV file ``data`` lasts, read from its header (nothing is decoded): 415 when the
    bytes are not a WAV file, 422 when its header is broken or declares a sample rate outside
    4-192 kHz (:func:`rnnkit.data.audio.check_sample_rate`: resampling from an odd rate costs
    gigabytes), 413 when it lasts more than ``limit``."""
    import soundfile

    from rnnkit.data.audio import check_sample_rate
    from rnnkit.errors import DataError

    nonempty(data, "WAV file")
    if not is_wav(data):
        raise HTTPException(415, "the body is not a WAV file (a WAV file begins with RIFF....WAVE)")
    try:
        info = soundfile.info(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        reason = getattr(exc, "error_string", "") or one_line(exc)
        raise HTTPException(422, f"the WAV file is corrupt: {one_line(reason)}") from None
    seconds = info.frames / info.samplerate if info.samplerate > 0 else 0.0
    if info.samplerate <= 0 or info.frames <= 0:
        raise HTTPException(422, "the WAV file is corrupt: it holds no samples")
    try:
        check_sample_rate(info.samplerate, "the WAV file")
    except DataError as exc:
        raise HTTPException(422, one_line(exc)) from None
    if seconds > limit:
        raise HTTPException(413, f"the recording lasts {seconds:.1f} s, over the limit of {limit:g} s")
    return seconds


def image_size(data: bytes, limit: int) -> tuple[int, int]:
    """The width and height of the PNG or JPEG picture ``data``, read from its header (the pixels are
    not decoded): 415 when the bytes are neither, 422 when the header is broken, 413 when it has more
    than ``limit`` pixels, or more than Pillow will open (its decompression-bomb guard)."""
    from PIL import Image, UnidentifiedImageError

    nonempty(data, "picture")
    if not (data.startswith(PNG_MAGIC) or data.startswith(JPEG_MAGIC)):
        raise HTTPException(415, "the body is neither a PNG nor a JPEG file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as picture:
                width, height = picture.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise HTTPException(413, f"the picture is too large: {one_line(exc)}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise HTTPException(422, f"the picture is corrupt: {one_line(exc)}") from None
    if width * height > limit:
        raise HTTPException(
            413, f"the picture has {width}x{height} = {width * height:,} pixels, over the limit of {limit:,}"
        )
    return width, height


def upload_body(types: Iterable[str], what: str) -> dict:
    """The OpenAPI ``requestBody`` of an upload endpoint (FastAPI cannot see a raw body's schema)."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "description": f"The {what}'s bytes, as they are in the file.",
            "content": {name: binary for name in sorted(types)},
        }
    }
