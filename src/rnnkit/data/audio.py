r"""Speech features: WAV files in, log-mel filterbanks out.

:func:`read_wav` reads a file with libsndfile (the ``soundfile`` package), insists on one channel,
and resamples to the wanted rate with a polyphase filter (``scipy.signal.resample_poly``).
:func:`log_mel` turns samples into ``n_mels`` log-mel energies per frame: a Hann-windowed STFT
(``torch.stft``; 25 ms windows every 10 ms by default), the power spectrum, a bank of triangular filters
evenly spaced on the mel scale :math:`m = 2595 \log_{10}(1 + f / 700)` (HTK), and
:math:`\log(E + 10^{-6})`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.errors import DataError

MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 192_000
"""The sample rates (Hz) a WAV file may have. A header may claim any rate up to 2**31, and resampling
from an odd one (say a prime like 999,983 Hz) builds a polyphase filter of about 20 * rate taps:
gigabytes from a file of a few hundred kilobytes."""


def check_sample_rate(rate: int, name: str) -> None:
    """A one-line :class:`DataError` naming ``name`` unless ``rate`` lies in
    [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`]."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise DataError(
            f"{name}: sample rate {rate:,} Hz; rnnkit speech reads {MIN_SAMPLE_RATE // 1000}-"
            f"{MAX_SAMPLE_RATE // 1000} kHz audio (resample it first, e.g. sox in.wav -r 16000 out.wav)"
        )


@dataclass(kw_only=True)
class FeatureConfig:
    sample_rate: int = 8000
    """Audio at another rate is resampled to this."""
    n_mels: int = 40
    window_ms: float = 25.0
    hop_ms: float = 10.0
    f_min: float = 20.0
    f_max: float = 0.0
    """Highest filter edge in Hz (0: half the sample rate)."""
    min_seconds: float = 0.05
    """Shorter audio is refused (it would give almost no frames)."""
    normalise: str = "utterance"
    """utterance (each file's own mean and deviation per band), global (the training set's), or none."""

    def __post_init__(self) -> None:
        if self.sample_rate < 1000 or self.n_mels < 1 or self.window_ms <= 0 or self.hop_ms <= 0:
            raise ValueError("features: sample_rate >= 1000, n_mels >= 1, window_ms > 0 and hop_ms > 0")
        if self.normalise not in ("utterance", "global", "none"):
            raise ValueError(f"normalise: expected utterance, global or none, got {self.normalise!r}")

    @property
    def window(self) -> int:
        return round(self.sample_rate * self.window_ms / 1000)

    @property
    def hop(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def n_fft(self) -> int:
        return 1 << (self.window - 1).bit_length()


def read_wav(
    source: Path | bytes, sample_rate: int, min_seconds: float = 0.05, name: str = "the audio"
) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at ``sample_rate`` of a WAV file, named by its path or given as
    its content (bytes, an upload: read from memory, nothing written to disk); a one-line
    :class:`DataError` naming the file (or ``name`` for bytes) otherwise: a file of several channels,
    a sample rate outside :data:`MIN_SAMPLE_RATE`-:data:`MAX_SAMPLE_RATE`, a sample that is not a
    finite number (a float WAV may hold NaN or infinity), too short a recording."""
    import io

    import soundfile

    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise DataError(f"{name}: empty, expected a WAV recording")
        opened: io.BytesIO | str = io.BytesIO(data)
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file, expected a WAV recording")
        opened = str(path)
    try:
        samples, rate = soundfile.read(opened, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).split(":")[-1].strip() or "unreadable"
        raise DataError(f"{name}: not a readable audio file ({reason})") from None
    if samples.shape[1] != 1:
        raise DataError(
            f"{name}: {samples.shape[1]} channels; rnnkit speech reads mono audio "
            f"(mix it down first, e.g. sox in.wav -c 1 out.wav)"
        )
    check_sample_rate(rate, name)
    samples = samples[:, 0]
    if not np.isfinite(samples).all():
        raise DataError(f"{name}: holds samples that are not finite numbers (NaN or infinity)")
    seconds = len(samples) / rate
    if seconds < min_seconds:
        raise DataError(f"{name}: {seconds:.3f} s of audio; at least {min_seconds:g} s are needed")
    if rate != sample_rate:
        from scipy.signal import resample_poly

        g = math.gcd(rate, sample_rate)
        samples = resample_poly(samples, sample_rate // g, rate // g).astype(np.float32)
    return samples


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filters(n_mels: int, n_fft: int, sample_rate: int, f_min: float, f_max: float) -> Tensor:
    """``(n_fft // 2 + 1, n_mels)``: triangular filters, evenly spaced in mel, peak 1."""
    f_max = f_max or sample_rate / 2
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    bank = np.clip(np.minimum(rising, falling), 0.0, None)
    return torch.from_numpy(bank.T.astype(np.float32))


def log_mel(samples: np.ndarray | Tensor, config: FeatureConfig) -> Tensor:
    """``(frames, n_mels)`` log-mel energies (before any normalisation)."""
    x = torch.as_tensor(samples, dtype=torch.float32)
    if x.numel() < config.window:
        x = torch.nn.functional.pad(x, (0, config.window - x.numel()))
    # torch.stft centres the window inside n_fft samples; pad so that frame k reads exactly
    # samples [k * hop, k * hop + window): 1 + (N - window) // hop frames
    extra = config.n_fft - config.window
    x = torch.nn.functional.pad(x, (extra // 2, extra - extra // 2))
    spec = torch.stft(
        x,
        n_fft=config.n_fft,
        hop_length=config.hop,
        win_length=config.window,
        window=torch.hann_window(config.window),
        center=False,
        return_complex=True,
    )  # (freq, frames)
    power = spec.abs().pow(2).T  # (frames, freq)
    bank = mel_filters(config.n_mels, config.n_fft, config.sample_rate, config.f_min, config.f_max)
    return torch.log(power @ bank + 1e-6)


def normalise_utterance(features: Tensor) -> Tensor:
    """Zero mean, unit deviation per band over the file's own frames."""
    return (features - features.mean(0)) / (features.std(0, unbiased=False) + 1e-5)


def features_of(source: Path | bytes, config: FeatureConfig) -> Tensor:
    """Read and featurise one WAV file, named by its path or given as its content (bytes; see
    :func:`read_wav`), per-utterance normalisation applied when configured."""
    feats = log_mel(read_wav(source, config.sample_rate, config.min_seconds), config)
    return normalise_utterance(feats) if config.normalise == "utterance" else feats
