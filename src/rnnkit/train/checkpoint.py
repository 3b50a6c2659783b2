"""Checkpoints: folders of safetensors and JSON, written atomically, listed in a checksummed manifest.

A run folder looks like this::

    RUN/
      config.json            the resolved run config (also inside every checkpoint)
      metrics.jsonl          one JSON object per logged step
      manifest.json          {"format": 1, "last": "ckpt-000500", "best": "ckpt-000400",
                              "checkpoints": {"ckpt-000500": {"model.safetensors":
                                                {"sha256": "...", "bytes": 123}, ...}},
                              "data": {"train.bin": {"sha256": "...", "bytes": 456}, ...}}
      .lock                  held (flock) by the process training into the folder
      ckpt-000400/           model.safetensors  config.json  state.safetensors  trainer.json
      ckpt-000500/
      data/                  the encoded corpus (train.bin, val.bin)

Every file is written to a temporary name in its folder, flushed and fsynced, then renamed; a new
checkpoint folder is complete before ``manifest.json`` (itself replaced atomically) names it, and older
folders are removed only after that. A crash at any moment therefore leaves the manifest naming a
complete checkpoint. Nothing is ever unpickled: weights and optimizer tensors go through safetensors,
everything else through JSON, and every file's SHA-256 is checked against the manifest before use.

A run folder may come from someone else, so reading one trusts nothing in it: every file is ``lstat``ed
first (a regular file, never a symlink, a FIFO or a device), its size must be the one the manifest
records (JSON files also have a ceiling), it is hashed in chunks as it is read, names in the manifest must
look like checkpoint names (never paths), and the weights' shapes are read from the safetensors header
before any tensor is loaded, so that a model is built only once its config is shown to fit them
(:mod:`rnnkit.train.build`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from rnnkit.errors import CheckpointError, UsageError
from rnnkit.train.safefiles import MAX_JSON_BYTES, parse_json, read_regular_file, read_safetensors_shapes

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
METRICS_FILE = "metrics.jsonl"
STAGES = ("pretrain",)
"""Sub-folders of a run that hold an earlier training stage (a run stopped there has nothing else)."""
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
ENSEMBLE_FILE = "ensemble.json"
"""At the top of a run folder whose models live in member sub-folders (a classifier ensemble)."""
STATE_FILE = "state.safetensors"
TRAINER_FILE = "trainer.json"
CHECKPOINT_FILES = (MODEL_FILE, CONFIG_FILE, STATE_FILE, TRAINER_FILE)
STATE_COPIES = 4
"""A trainer state holds at most this many copies of the model's size (AdamW's two moments, the raw
weights under weight averaging, one spare), beside the carried state and the RNG."""
CHECKPOINT_NAME = re.compile(r"ckpt-[0-9]{6,12}")
_PREFIXES = ("_orig_mod.", "module.")  # torch.compile and DDP wrappers


def normalise_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """State-dict keys without wrapper prefixes, tensors contiguous, on the CPU, unshared."""
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value.detach().to("cpu").contiguous().clone()
    return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse_json(data: bytes, path: Path, what: str, key: str) -> dict:
    """A JSON object whose ``key`` is this rnnkit's format version, or a one-line CheckpointError."""
    obj = parse_json(data, path, what)
    if not isinstance(obj, dict) or obj.get(key) != FORMAT_VERSION:
        found = obj.get(key) if isinstance(obj, dict) else None
        raise CheckpointError(f"{path}: {what} format {found!r}, this rnnkit reads format {FORMAT_VERSION}")
    return obj


def _file_entry(entry: object) -> tuple[str, int | None] | None:
    """A manifest's record of one file: (sha256, bytes); bytes is None in manifests written before
    sizes were recorded. None when the record is malformed."""
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, dict):
        digest, size = entry.get("sha256"), entry.get("bytes")
        if isinstance(digest, str) and isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            return digest, size
    return None


def _check_manifest(manifest: dict, path: Path) -> None:
    """Every name a path component of ours, every file record well formed; else a CheckpointError."""
    checkpoints = manifest.get("checkpoints")
    if not isinstance(checkpoints, dict):
        raise CheckpointError(f"{path}: the manifest names no checkpoints")
    for name, files in checkpoints.items():
        if not CHECKPOINT_NAME.fullmatch(name) or not isinstance(files, dict):
            raise CheckpointError(f"{path}: {name!r} is not a checkpoint name")
        for filename, entry in files.items():
            if filename not in CHECKPOINT_FILES or _file_entry(entry) is None:
                raise CheckpointError(f"{path}: {name}/{filename!r} is not a checkpoint file")
    for key in ("last", "best"):
        if manifest.get(key) is not None and (
            not isinstance(manifest[key], str) or manifest[key] not in checkpoints
        ):
            raise CheckpointError(f"{path}: the manifest's {key!r} names no listed checkpoint")
    data = manifest.get("data", {})
    if not isinstance(data, dict) or any(
        not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith(".") or _file_entry(entry) is None
        for name, entry in data.items()
    ):
        raise CheckpointError(f"{path}: the manifest's data files are malformed")


def read_manifest(run_dir: Path, *, need_checkpoint: bool = True) -> dict:
    """The run's manifest, checked (see :func:`_check_manifest`); with ``need_checkpoint`` it must name
    a complete checkpoint (a run stopped before its first one has a manifest without)."""
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run folder")
    if not os.path.lexists(path):
        raise CheckpointError(f"{run_dir}: not a run folder with a checkpoint (no {MANIFEST})")
    manifest = _parse_json(read_regular_file(path)[0], path, "manifest", "format")
    _check_manifest(manifest, path)
    links = sorted(entry.name for entry in run_dir.iterdir() if entry.is_symlink())
    if links:  # data/, pretrain/, member-N/ or a checkpoint pointing elsewhere
        raise CheckpointError(
            f"{run_dir}: holds symbolic links ({', '.join(links[:3])}); a run folder holds none"
        )
    if need_checkpoint and manifest.get("last") is None:
        raise CheckpointError(
            f"{run_dir}: stopped before its first checkpoint, so there is nothing to load or resume; "
            "run the same training command again to start it afresh"
        )
    return manifest


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` has a manifest that names a checkpoint (without checking the files)."""
    try:
        return read_manifest(run_dir).get("last") is not None
    except CheckpointError:
        return False


def file_record(data: bytes) -> dict:
    """What the manifest records of a file: its SHA-256 and its size."""
    return {"sha256": sha256(data), "bytes": len(data)}


def record_file(path: Path) -> dict:
    """What the manifest records of a file on disk (read and hashed in chunks, never whole)."""
    data_size = os.lstat(path).st_size
    return {"sha256": read_regular_file(path, size=data_size, keep=False)[1], "bytes": data_size}


def write_manifest(run_dir: Path, manifest: dict) -> None:
    atomic_write_json(Path(run_dir) / MANIFEST, {"format": FORMAT_VERSION, **manifest})


def verify_data_files(run_dir: Path, subfolder: str = "data") -> None:
    """Check the files the manifest lists under ``data`` (an encoded corpus) against their records;
    a run folder that records none (written before they were recorded) is taken as it is."""
    manifest = read_manifest(run_dir, need_checkpoint=False)
    for name, entry in manifest.get("data", {}).items():
        digest, size = _file_entry(entry) or ("", None)
        path = Path(run_dir) / subfolder / name
        if read_regular_file(path, size=size, limit=2**40, keep=False)[1] != digest:
            raise CheckpointError(f"{path}: checksum mismatch (the file is corrupt or was changed)")


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model_state: dict[str, torch.Tensor],
    config: dict,
    state_tensors: dict[str, torch.Tensor],
    trainer_state: dict,
    best: bool,
) -> str:
    """Write checkpoint ``ckpt-{step}`` and make it the last (and the best when ``best``); its name."""
    run_dir = Path(run_dir)
    name = f"ckpt-{step:06d}"
    try:
        manifest = read_manifest(run_dir, need_checkpoint=False)
    except CheckpointError:
        manifest = {"format": FORMAT_VERSION, "checkpoints": {}}
    files = {
        MODEL_FILE: save_safetensors(
            normalise_keys(model_state), metadata={"format": "rnnkit", "version": "1"}
        ),
        CONFIG_FILE: (json.dumps(config, indent=1, ensure_ascii=False) + "\n").encode("utf-8"),
        STATE_FILE: save_safetensors(
            {k: v.detach().cpu().contiguous().clone() for k, v in state_tensors.items()}
        ),
        TRAINER_FILE: (json.dumps(trainer_state, indent=1) + "\n").encode("utf-8"),
    }
    tmp = run_dir / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for filename, data in files.items():
            with open(tmp / filename, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        _fsync_dir(tmp)
        final = run_dir / name
        if final.exists():  # an earlier, unlisted or superseded write of the same step
            if name in (manifest.get("last"), manifest.get("best")):
                manifest["checkpoints"].pop(name, None)
                manifest["last"] = manifest["best"] = None
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    checksums = {filename: file_record(data) for filename, data in files.items()}
    best_name = name if best or not manifest.get("best") else manifest["best"]
    keep = {name: checksums}
    if best_name != name:
        keep[best_name] = manifest["checkpoints"][best_name]
    extra = {"data": manifest["data"]} if manifest.get("data") else {}
    write_manifest(run_dir, {"last": name, "best": best_name, "checkpoints": keep, **extra})
    for entry in run_dir.iterdir():  # only now is it safe to drop what the manifest no longer names
        stale_tmp = entry.name.startswith(".tmp-ckpt-")  # left by a process killed mid-write
        if entry.is_dir() and (stale_tmp or (entry.name.startswith("ckpt-") and entry.name not in keep)):
            shutil.rmtree(entry, ignore_errors=True)
    return name


@dataclass
class Checkpoint:
    """A checkpoint whose config is read and checked. ``shapes`` come from the weights file's header;
    the weights themselves (``model_state``) are read, verified and parsed on first use, so that a model
    can be shown to fit them before anything is built. ``state_tensors`` and ``trainer_state`` are empty
    unless asked for."""

    folder: Path
    name: str
    config: dict
    shapes: dict[str, tuple[int, ...]]
    state_tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    trainer_state: dict = field(default_factory=dict)
    model_record: tuple[str, int | None] = ("", None)
    model_bytes: int = 0
    """The size of the weights file, which its header accounts for byte by byte."""
    _model_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def model_state(self) -> dict[str, torch.Tensor]:
        if self._model_state is None:
            path = self.folder / MODEL_FILE
            data = _read_verified(path, self.model_record, limit=self.model_bytes)
            self._model_state = _parse_safetensors(path, data)
        return self._model_state


def _record(sums: dict, folder: Path, filename: str) -> tuple[str, int | None]:
    entry = _file_entry(sums.get(filename))
    if entry is None:
        raise CheckpointError(f"{folder / filename}: not listed in the manifest")
    return entry


def _read_verified(path: Path, record: tuple[str, int | None], limit: int = MAX_JSON_BYTES) -> bytes:
    digest, size = record
    data, found = read_regular_file(path, size=size, limit=limit)
    if found != digest:
        raise CheckpointError(f"{path}: checksum mismatch (the file is corrupt or was changed)")
    return data


def _parse_safetensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a safetensors file ({exc})") from None
    except MemoryError:
        raise CheckpointError(f"{path}: the tensors do not fit in memory") from None


def load_checkpoint(
    run_dir: Path, which: str = "best", *, task: str | None = None, with_state: bool = False
) -> Checkpoint:
    """The ``best`` or ``last`` checkpoint of a run, every file checked against the manifest as it is
    read (the weights when first used: :attr:`Checkpoint.model_state`)."""
    run_dir = Path(run_dir)
    if which not in ("best", "last"):
        raise UsageError(f"--checkpoint: expected best or last, got {which!r}")
    manifest = read_manifest(run_dir)
    name = manifest.get(which) or manifest["last"]
    sums = manifest["checkpoints"][name]
    folder = run_dir / name
    if folder.is_symlink() or not folder.is_dir():
        raise CheckpointError(f"{folder}: not a checkpoint folder (a run folder holds no symbolic links)")
    config_bytes = _read_verified(folder / CONFIG_FILE, _record(sums, folder, CONFIG_FILE))
    config = _parse_json(config_bytes, folder / CONFIG_FILE, "checkpoint", "format_version")
    if task is not None and config.get("task") != task:
        raise CheckpointError(f"{run_dir}: a {config.get('task')!r} checkpoint, not a {task!r} one")
    model_record = _record(sums, folder, MODEL_FILE)
    shapes = read_safetensors_shapes(folder / MODEL_FILE, model_record[1])
    model_bytes = os.lstat(folder / MODEL_FILE).st_size  # checked: regular, and all of it accounted for
    loaded = Checkpoint(folder, name, config, shapes, model_record=model_record, model_bytes=model_bytes)
    if with_state:
        path = folder / STATE_FILE
        record = _record(sums, folder, STATE_FILE)
        read_safetensors_shapes(path, record[1])  # a well-formed file, before it is read whole
        # the optimizer's two moments, the raw weights under averaging, the carried state and the RNG:
        # never more than a few copies of the model
        limit = STATE_COPIES * model_bytes + 64 * 2**20
        loaded.state_tensors = _parse_safetensors(path, _read_verified(path, record, limit=limit))
        path = folder / TRAINER_FILE
        trainer_state = parse_json(_read_verified(path, _record(sums, folder, TRAINER_FILE)), path, "state")
        if not isinstance(trainer_state, dict):
            raise CheckpointError(f"{path}: not a trainer state (a JSON object)")
        loaded.trainer_state = trainer_state
    return loaded


def task_config(run_dir: Path, which: str, task: str, cls: type, what: str):
    """The checkpoint ``which`` of a ``task`` run and its config as a ``cls``; refused with a reason."""
    loaded = load_checkpoint(Path(run_dir), which, task=task)
    return loaded, config_of(loaded, cls, what)


def config_of(loaded: Checkpoint, cls: type, what: str):
    """A loaded checkpoint's config as a ``cls``; refused with a reason."""
    from rnnkit.config import from_dict

    try:
        return from_dict(cls, loaded.config["config"])
    except (KeyError, TypeError, ValueError, UsageError) as exc:
        raise CheckpointError(f"{loaded.folder}: config.json does not describe {what} ({exc})") from None


def load_weights(model: torch.nn.Module, loaded: Checkpoint) -> None:
    """Put a checkpoint's weights into ``model`` (built from its config), or say that they do not fit."""
    try:
        model.load_state_dict(loaded.model_state)
    except (RuntimeError, TypeError):
        raise CheckpointError(f"{loaded.folder}: the weights do not fit the model in config.json") from None


def read_metrics(run_dir: Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` in order; a torn or foreign line (a crash mid-write) is
    skipped, and a run without the file has none."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text("utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
