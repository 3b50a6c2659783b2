"""rnnkit: recurrent neural networks on PyTorch.

The recurrent core (``rnnkit.nn``), a NumPy reference with hand-written BPTT (``rnnkit.reference``),
one training engine (``rnnkit.train``), the tasks (``rnnkit.tasks``), and ``rnnkit.load(run_dir)``, which
returns any trained run's loaded model with the methods the command line and the server call::

    rnnkit.load("runs/shakespeare").generate("ROMEO:", 200)   # LoadedLM: generate, score
    rnnkit.load("runs/sst2").classify(["a witty film"])        # LoadedClassifier: classify
    rnnkit.load("runs/cws").tag_texts(["上海体育局召开会议"])     # LoadedTagger: tag_texts, tag
    rnnkit.load("runs/air").forecast()                         # LoadedForecaster: forecast
    rnnkit.load("runs/digits").transcribe([wav_path_or_bytes]) # LoadedSpeech: transcribe, attend
    rnnkit.load("runs/shapes").caption([png_path_or_bytes])    # LoadedCaptioner: caption
"""

from rnnkit.errors import CheckpointError, DataError, RnnkitError, TrainingError, UsageError
from rnnkit.generate import PoemForm, SamplingConfig, beam_search, sample
from rnnkit.nn import GRUCell, LSTMCell, LSTMState, Recurrent, RNNCell
from rnnkit.tasks import load_run as load
from rnnkit.train import TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DataError",
    "GRUCell",
    "LSTMCell",
    "LSTMState",
    "PoemForm",
    "RNNCell",
    "Recurrent",
    "RnnkitError",
    "SamplingConfig",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "UsageError",
    "__version__",
    "beam_search",
    "load",
    "sample",
]
