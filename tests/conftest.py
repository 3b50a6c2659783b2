import os
from pathlib import Path

import pytest
import torch

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
