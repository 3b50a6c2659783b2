r"""Sentence classification from the last output of a (bi)RNN: sentiment analysis, topic labels.

The tutorial's many-to-one RNN: read the whole sequence, classify from the state at its end. For a
bidirectional RNN the "end" of each direction differs: the sequence's representation is the forward
state at its own last token joined with the backward state at its first token,

.. math::
    r = [\overrightarrow{h}_{T_b} ; \overleftarrow{h}_1], \qquad p(y \mid x) = \mathrm{softmax}(W r + b),

which :class:`rnnkit.nn.Recurrent`'s final state gives exactly, padded batch or not. ``pool="mean"``
and ``pool="max"`` average or max-pool the outputs over the real steps instead, for comparison;
``pool="concat"`` joins all three, :math:`[r; \mathrm{mean}_t\, o_t; \max_t o_t]` (ULMFiT's concat
pooling, Howard and Ruder 2018).

Tokens are characters for Chinese and Japanese and lower-cased words for other text (chosen from the
data, or forced with ``tokens``). Batches hold texts of similar length (length buckets), so little
padding is read.

With ``pretrain.minutes`` (or ``pretrain.steps``) the embedding and the RNN are first trained as
language models on the training texts themselves, labels unused (Dai and Le, "Semi-supervised
sequence learning", 2015): the forward direction predicts each next token and the backward direction
each previous one, through two heads that are then dropped; classification training continues from
there. The pre-training minutes come out of ``train.max_minutes``.

With ``model.bigram_size`` > 0, character tokens also see their two neighbouring bigrams, as in the
tagger: the input at step t is :math:`[E_c(c_t); E_b(c_{t-1}c_t); E_b(c_t c_{t+1})]` ("不" is "not",
but "不错" is "not bad": good). Off by default: on ChnSentiCorp's validation rows they did not help
(best validation accuracy 0.902 against 0.911 without; the bigram model over-fits sooner).

With ``members`` > 1 the run is an ensemble: that many classifiers are trained one after another in
sub-folders ``member-1``, ``member-2``, ... of the run folder, member i with seed ``train.seed + i - 1``
(so each starts from its own weights, reads its own batch order and, without a ``data.val`` file,
holds out its own validation rows: every training row teaches most members), and each keeps its own
best checkpoint by its own validation accuracy. Predictions average the members' probabilities.
``train.max_minutes`` (and ``pretrain.minutes``) are the whole ensemble's, shared out evenly;
``train.max_steps`` is each member's. A classifier that over-fits within a fraction of the budget
(ChnSentiCorp's peaks after about 600 of 1,950 steps) turns the rest of the budget into members.
"""

from rnnkit.tasks.classify.config import (
    TASK,
    ClassifierConfig,
    ClassifierDataConfig,
    ClassifierModelConfig,
    PretrainConfig,
)
from rnnkit.tasks.classify.data import Encoded, TextInputs, cut, load_tables
from rnnkit.tasks.classify.ensemble import LoadedEnsemble, is_ensemble, member_config, read_ensemble
from rnnkit.tasks.classify.metrics import format_confusion, score_file, scores
from rnnkit.tasks.classify.model import SequenceClassifier
from rnnkit.tasks.classify.pretrain import TextLanguageModel
from rnnkit.tasks.classify.task import (
    SPEC,
    LoadedClassifier,
    load_classifier,
    saved_classifier_config,
    train_classifier,
)

__all__ = [
    "SPEC",
    "TASK",
    "ClassifierConfig",
    "ClassifierDataConfig",
    "ClassifierModelConfig",
    "Encoded",
    "LoadedClassifier",
    "LoadedEnsemble",
    "PretrainConfig",
    "SequenceClassifier",
    "TextInputs",
    "TextLanguageModel",
    "cut",
    "format_confusion",
    "is_ensemble",
    "load_classifier",
    "load_tables",
    "member_config",
    "read_ensemble",
    "saved_classifier_config",
    "score_file",
    "scores",
    "train_classifier",
]
