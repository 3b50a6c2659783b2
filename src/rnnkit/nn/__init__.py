"""Building blocks in pure torch: cells and the ``Recurrent`` layer. No I/O, no printing."""

from rnnkit.nn.cells import CELLS, CellBase, GRUCell, LSTMCell, LSTMState, RNNCell, cell_class
from rnnkit.nn.recurrent import Recurrent, Unrolled
from rnnkit.nn.stepper import Stepper

__all__ = [
    "CELLS",
    "CellBase",
    "GRUCell",
    "LSTMCell",
    "LSTMState",
    "RNNCell",
    "Recurrent",
    "Stepper",
    "Unrolled",
    "cell_class",
]
