r"""Speech recognition with Listen, Attend and Spell (Chan et al., 2016) on spoken digits.

The **listener** is a :class:`rnnkit.nn.Pyramid`: a BiLSTM over 40 log-mel bands every 10 ms and
pyramidal BiLSTM layers that halve the sequence each (8 times shorter with 3). The **speller** is an
LSTM that writes the transcript one character at a time; at each step it attends to the listener's
outputs :math:`h_u` with the paper's content attention,

.. math::
    e_{i,u} = \langle \phi(s_i), \psi(h_u) \rangle, \quad
    \alpha_{i} = \mathrm{softmax}_u(e_{i,u}), \quad c_i = \sum_u \alpha_{i,u} h_u,

    s_i = \mathrm{LSTM}(s_{i-1}, [y_{i-1}; c_{i-1}]), \quad
    P(y_i \mid x, y_{<i}) = \mathrm{softmax}(\mathrm{MLP}([s_i; c_i])),

trained with teacher forcing (the loss summed over every output character) and decoded greedily or by
beam search with length normalisation. An optional **CTC** head on the listener (``ctc_weight`` > 0)
adds :math:`\lambda\, \mathcal{L}_{CTC}` to the loss and gives a second, attention-free decoder.

The data is the Free Spoken Digit Dataset layout: ``{digit}_{speaker}_{index}.wav``, transcript the
digit's English word; the official test split is index 0-4; with ``holdout_speaker`` the test set is
that speaker's every recording and the model never hears them in training.
"""

from __future__ import annotations

from rnnkit.tasks.speech.config import TASK, SpeechConfig, SpeechDataConfig, SpeechModelConfig
from rnnkit.tasks.speech.data import (
    DIGITS,
    Encoded,
    Utterance,
    build_chars,
    char_table,
    featurise,
    list_fsdd,
    pad_frames,
    spec_augment,
    split_fsdd,
)
from rnnkit.tasks.speech.metrics import edit_distance, scores, transcribe_encoded
from rnnkit.tasks.speech.model import ListenAttendSpell, Speller
from rnnkit.tasks.speech.task import (
    SPEC,
    LoadedSpeech,
    SpeechTask,
    load_speech,
    plot_attention,
    prepare_task,
    saved_speech_config,
)

__all__ = [
    "DIGITS",
    "SPEC",
    "TASK",
    "Encoded",
    "ListenAttendSpell",
    "LoadedSpeech",
    "SpeechConfig",
    "SpeechDataConfig",
    "SpeechModelConfig",
    "SpeechTask",
    "Speller",
    "Utterance",
    "build_chars",
    "char_table",
    "edit_distance",
    "featurise",
    "list_fsdd",
    "load_speech",
    "pad_frames",
    "plot_attention",
    "prepare_task",
    "saved_speech_config",
    "scores",
    "spec_augment",
    "split_fsdd",
    "transcribe_encoded",
]
