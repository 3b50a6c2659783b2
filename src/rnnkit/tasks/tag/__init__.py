r"""Sequence tagging with a bidirectional RNN: named entities and Chinese word segmentation.

Every token's tag depends on both sides (the tutorial's example: a name that only later words make
clear), so the tagger reads the sentence in both directions and scores each tag at each step from the
joined states, :math:`e_t = W [\overrightarrow{h}_t ; \overleftarrow{h}_t] + b`. With ``crf`` (the
default) a :class:`rnnkit.nn.crf.CRF` on top scores whole tag sequences (B-PER may not follow B-LOC's
I-LOC...), trained by its forward algorithm and decoded by Viterbi; without it each step is a softmax.

Two input formats: ``conll`` (``token<TAB>tag`` lines, blank line between sentences) and ``segmented``
(words separated by spaces, turned into B/M/E/S character tags and back). Tokens are characters when
the text is Chinese or Japanese, else words (lower-cased for the vocabulary).

Character tokens also see their two neighbouring bigrams (``model.bigram_size``, on by default): the
input at step t is :math:`[E_c(c_t); E_b(c_{t-1}c_t); E_b(c_t c_{t+1})]`, with sentence-boundary marks at
both ends. Bigrams are the strongest single feature for word segmentation (a two-character word is
often one frequent bigram); bigrams seen fewer than ``data.bigram_min_count`` times map to ``<unk>``.
"""

from rnnkit.tasks.tag.config import TASK, TaggerConfig, TaggerDataConfig, TaggerModelConfig
from rnnkit.tasks.tag.data import EncodedTags, Inputs
from rnnkit.tasks.tag.metrics import score
from rnnkit.tasks.tag.model import Tagger
from rnnkit.tasks.tag.task import SPEC, LoadedTagger, TagTask, load_tagger, prepare_task, saved_tagger_config

__all__ = [
    "SPEC",
    "TASK",
    "EncodedTags",
    "Inputs",
    "LoadedTagger",
    "TagTask",
    "Tagger",
    "TaggerConfig",
    "TaggerDataConfig",
    "TaggerModelConfig",
    "load_tagger",
    "prepare_task",
    "saved_tagger_config",
    "score",
]
