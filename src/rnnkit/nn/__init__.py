"""Building blocks in pure torch: cells, the ``Recurrent`` layer, the ``Pyramid`` listener. No I/O."""

from rnnkit.nn.cells import CELLS, CellBase, GRUCell, LSTMCell, LSTMState, RNNCell, cell_class
from rnnkit.nn.pyramid import Pyramid
from rnnkit.nn.recurrent import Recurrent, Unrolled
from rnnkit.nn.stepper import Stepper, Stream

__all__ = [
    "CELLS",
    "CellBase",
    "GRUCell",
    "LSTMCell",
    "LSTMState",
    "Pyramid",
    "RNNCell",
    "Recurrent",
    "Stepper",
    "Stream",
    "Unrolled",
    "cell_class",
]
