r"""Look and tell (看图说话): a CNN reads the picture, an RNN writes the caption.

The tutorial's CNN + RNN: the picture's feature vector :math:`v = \mathrm{CNN}(I)` enters the RNN at the
first step only,

.. math::
    h_1 = f(W_{hx} x_1 + W_{hh} h_0 + b + W_{hi} v), \qquad h_t = f(W_{hx} x_t + W_{hh} h_{t-1} + b)
    \quad (t > 1),

so every later word knows the picture only through the hidden state. Implemented exactly so: the RNN's
input at step t is :math:`[x_t; v]` at t = 1 and :math:`[x_t; 0]` after, and :math:`W_{hi}` is the block
of the input weights that meets :math:`v` (``inject="every-step"`` feeds :math:`v` at every step
instead, for comparison).

The picture vector keeps where things are: the CNN's last feature map is pooled to a 4 x 4 grid
(``grid_size``) and flattened before the projection, which is layer-normalised. A CNN trained from
scratch learns slowly from the caption loss alone when the picture enters at the first step only (its
gradient comes back through every later step's state); a second loss on v, predicting which words the
picture's captions use (``word_loss``, a multi-label "bag of words"), gives it a direct signal. The
decoder still sees the picture at the first step only.

The CNN is a small residual network trained from scratch (no pretrained weights can be downloaded
here); ``backbone="package.module:factory"`` builds another one (a torchvision or timm model, with
``backbone_weights`` read from a local file), whose classifier is removed. Decoding is greedy or beam
search with length normalisation; corpus BLEU-1..4 is sacrebleu's, against every reference caption of
each picture. Splits are by picture, never by caption.
"""

from rnnkit.tasks.caption.config import TASK, CaptionConfig, CaptionDataConfig, CaptionModelConfig
from rnnkit.tasks.caption.data import (
    Captions,
    Split,
    build_words,
    caption_ids,
    load_image,
    load_split,
    normalised,
    prepare,
    read_captions,
    split_pictures,
    word_table,
    words,
)
from rnnkit.tasks.caption.metrics import baselines, bleu, describe, picture_vectors
from rnnkit.tasks.caption.model import Captioner, ResidualBlock, SmallResNet, build_backbone
from rnnkit.tasks.caption.task import (
    SPEC,
    CaptionTask,
    LoadedCaptioner,
    load_captioner,
    picture_grid,
    prepare_task,
    saved_caption_config,
    saved_vocab,
    trust_backbone,
)

__all__ = [
    "SPEC",
    "TASK",
    "CaptionConfig",
    "CaptionDataConfig",
    "CaptionModelConfig",
    "CaptionTask",
    "Captioner",
    "Captions",
    "LoadedCaptioner",
    "ResidualBlock",
    "SmallResNet",
    "Split",
    "baselines",
    "bleu",
    "build_backbone",
    "build_words",
    "caption_ids",
    "describe",
    "load_captioner",
    "load_image",
    "load_split",
    "normalised",
    "picture_grid",
    "picture_vectors",
    "prepare",
    "prepare_task",
    "read_captions",
    "saved_caption_config",
    "saved_vocab",
    "split_pictures",
    "trust_backbone",
    "word_table",
    "words",
]
