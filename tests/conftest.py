import os
from pathlib import Path

import pytest
import torch

# trained runs that a task's tests and its CLI's tests share: session-scoped here, so each trains once
from tests.fixtures_caption import shapes_run  # noqa: F401
from tests.fixtures_speech import fsdd, shared_data_path, small_fsdd, speech_run  # noqa: F401

torch.set_num_threads(min(2, os.cpu_count() or 1))


def data_dir() -> Path:
    """The shared datasets: $RNNKIT_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("RNNKIT_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    path = data_dir()
    if not path.is_dir():
        pytest.fail(f"the shared datasets are missing at {path}; set RNNKIT_DATA")
    return path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
