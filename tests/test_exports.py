import rnnkit
import rnnkit.nn

PUBLIC = [
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
NN = [
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


def test_public_api_is_pinned():
    assert rnnkit.__all__ == PUBLIC
    for name in rnnkit.__all__:
        assert getattr(rnnkit, name) is not None


def test_nn_exports():
    assert sorted(rnnkit.nn.__all__) == sorted(NN)
    for name in rnnkit.nn.__all__:
        assert hasattr(rnnkit.nn, name)


def test_error_exit_codes_are_distinct():
    kinds = (rnnkit.UsageError, rnnkit.DataError, rnnkit.CheckpointError, rnnkit.TrainingError)
    codes = [cls.exit_code for cls in kinds]
    assert len(set(codes)) == len(codes) and 0 not in codes
