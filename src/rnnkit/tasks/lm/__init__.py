"""The char-RNN language model: the main job (``rnnkit train | sample | eval``).

Embedding -> ``Recurrent`` (LSTM, GRU or vanilla RNN, stacked) -> dropout -> linear -> softmax over the
vocabulary, trained by truncated BPTT on one long stream of characters (or bytes), with the state
carried from batch to batch. A re-implementation of the char-RNN of A. Karpathy
(https://github.com/karpathy/char-rnn) and hzy46/Char-RNN-TensorFlow, with validation, resume and saved
configs, on :class:`rnnkit.train.Trainer`.
"""

from rnnkit.tasks.lm.config import (
    PRESETS,
    TASK,
    DataConfig,
    LMConfig,
    LMTrainConfig,
    ModelConfig,
    describe_preset,
    get_preset,
    preset_code,
    preset_demo,
    preset_lyrics,
    preset_poetry,
    preset_shakespeare,
    preset_small,
    preset_tiny,
    presets_help,
)
from rnnkit.tasks.lm.metrics import score_tokens
from rnnkit.tasks.lm.model import FAST_STREAMS, CharLM, build_model
from rnnkit.tasks.lm.task import (
    SPEC,
    UNKNOWN_WARNING,
    LMTask,
    LoadedLM,
    generate_text,
    load_lm,
    prepare_task,
    saved_config,
    score_text,
)

__all__ = [
    "FAST_STREAMS",
    "PRESETS",
    "SPEC",
    "TASK",
    "UNKNOWN_WARNING",
    "CharLM",
    "DataConfig",
    "LMConfig",
    "LMTask",
    "LMTrainConfig",
    "LoadedLM",
    "ModelConfig",
    "build_model",
    "describe_preset",
    "generate_text",
    "get_preset",
    "load_lm",
    "prepare_task",
    "preset_code",
    "preset_demo",
    "preset_lyrics",
    "preset_poetry",
    "preset_shakespeare",
    "preset_small",
    "preset_tiny",
    "presets_help",
    "saved_config",
    "score_text",
    "score_tokens",
]
