r"""Export trained models to ONNX, and run the exported char-RNN with onnxruntime.

Two graphs, each written with an ``export.json`` beside it that holds what a user of the ``.onnx`` file
needs and no checkpoint holds in ONNX terms (the vocabulary, the labels, the special ids, the state's
shape, how text becomes ids):

- the char-RNN's **one-step function** (:func:`export_lm_step`, file ``step.onnx``): token ids ``ids``
  ``(N,)`` int64 and the state (``h``, and ``c`` for the LSTM, each ``(L, N, H)`` float32) in; the
  next-token logits ``(N, V)`` and the new state (``h_out``, ``c_out``) out. The state starts at zeros;
  a loop over it generates text (:class:`OnnxCharLM`).
- the **classifier** (:func:`export_classifier`, file ``classifier.onnx``): token ids ``ids`` ``(N, T)``
  int64 (0 is padding), ``lengths`` ``(N,)`` int64, and, for a model that reads character bigrams,
  their ids ``bigrams`` ``(N, T + 1)``; the class probabilities ``probs`` ``(N, C)`` out.

The batch axis N and the length axis T are dynamic in both.

How they are exported: ``torch.onnx.export`` with the dynamo exporter (``torch.export``, then
onnxscript's translation of each ATen op). The step function is the cells' own step equations
(:meth:`rnnkit.nn.LSTMCell.step` and its siblings) applied layer by layer to the run's parameters, a
graph with no loop. The classifier needs a loop over a sequence of any length: each direction of each
layer is one call of :func:`recurrent_sequence` (PyTorch's own ``lstm``/``gru``/``rnn_tanh`` over the
padded batch), a custom op that ``torch.export`` keeps whole and :func:`_recurrent_onnx` writes as
ONNX's ``LSTM``, ``GRU`` or ``RNN`` operator (the loop inside the operator, any T). Left to itself,
``torch.export`` unrolls the vanilla RNN over the example's length, and traces the LSTM and GRU step by
step, slowly, to learn their shapes. Padding is handled as :class:`rnnkit.nn.Recurrent` does with
``lengths``: each sequence's outputs past its length are zero, its forward final state is the output at
its last real step, and its backward direction reads the sequence reversed *within its own length*
(``T_b - 1, ..., 0``, then the padding), so it starts at the sequence's own end. Tests check the ONNX
outputs against the PyTorch model to 1e-4 for every cell.

Generating the same text as ``rnnkit sample``: :class:`OnnxCharLM` runs the step function with
onnxruntime and draws each token with rnnkit's own sampler (:func:`rnnkit.generate.next_token`: torch's
``multinomial`` and a ``torch.Generator`` seeded as ``rnnkit sample --seed`` seeds it) on the logits
onnxruntime returns. Same seed, same temperature (top-k, top-p): the same text. Without torch, a
NumPy draw on the same probabilities writes text as good, but not the same characters (docs/export.md).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import CheckpointError, UsageError
from rnnkit.nn.cells import LSTMState
from rnnkit.nn.recurrent import Recurrent

if TYPE_CHECKING:  # annotations only: the tasks are imported when a run is loaded
    from rnnkit.tasks.classify.ensemble import LoadedEnsemble
    from rnnkit.tasks.classify.model import SequenceClassifier
    from rnnkit.tasks.classify.task import LoadedClassifier
    from rnnkit.tasks.lm.model import CharLM
    from rnnkit.tasks.lm.task import LoadedLM

FORMATS = ("onnx",)
"""What ``rnnkit export --format`` accepts."""
OPSET = 20
"""The ONNX opset of the exported files (torch 2.13's default)."""
META = "export.json"
"""The file written beside the ``.onnx`` file: what its user needs to feed it."""
META_VERSION = 1
LM_FILE = "step.onnx"
CLASSIFIER_FILE = "classifier.onnx"
MAX_BYTES = 1_800_000_000
"""Weights beyond this do not fit one ONNX file (protobuf's 2 GB limit, less room for the graph)."""

# torch 2.13's own exporter machinery warns about its own internals (deprecations it has not caught up
# with yet); nothing a caller can change. Ignored during the export only, by exact message and category.
_EXPORTER_NOISE: tuple[tuple[str, type[Warning]], ...] = (
    (r"_check_is_size will be removed", FutureWarning),
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # the batch axis that several inputs share is named once, as asked; torch says so for each other one
    (r"# The axis name: \w+ will not be used, since it shares the same shape constraints", UserWarning),
)

# ... and logs: the registry a warning for each torchvision op it cannot register (rnnkit has no
# torchvision), the graph optimizer a line for each rewrite. Raised to these levels during the export.
_EXPORTER_LOGS = {"torch.onnx": logging.ERROR, "onnxscript": logging.WARNING, "onnx_ir": logging.WARNING}


# -------------------------------------------------------------------------------------------------
# the graphs


def _weights(rnn: Recurrent, layer: int, direction: int) -> list[Tensor]:
    """``[weight_ih, weight_hh, bias_ih, bias_hh]`` of one layer and direction (PyTorch's names); the
    biases as zeros for a layer built with ``bias=False``."""
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    w_ih, w_hh = getattr(rnn, "weight_ih" + suffix), getattr(rnn, "weight_hh" + suffix)
    if not rnn.bias:
        zeros = w_ih.new_zeros(w_ih.shape[0])
        return [w_ih, w_hh, zeros, zeros]
    return [w_ih, w_hh, getattr(rnn, "bias_ih" + suffix), getattr(rnn, "bias_hh" + suffix)]


class LMStep(nn.Module):
    r"""The char-RNN's one step: :math:`x = E\,\mathrm{ids}`, then for each layer :math:`l` the cell's step
    :math:`s^{(l)}_t = \mathrm{cell}(x^{(l)}, s^{(l)}_{t-1})` with :math:`x^{(l+1)} = h^{(l)}_t`, then
    the logits :math:`V h^{(L)}_t + c`.

    Inputs: ``ids`` ``(N,)`` int64; ``h`` ``(L, N, H)``; ``c`` ``(L, N, H)`` for the LSTM (else omitted).

    Outputs: ``(logits (N, V), h_out (L, N, H))``, with ``c_out`` ``(L, N, H)`` last for the LSTM.

    The equations are the cells' own ``step`` (:mod:`rnnkit.nn.cells`) on the model's parameters, so
    this equals ``model.step(ids, state)`` in eval mode (no dropout). The model is copied: the one given
    is untouched.
    """

    def __init__(self, model: CharLM) -> None:
        super().__init__()
        if model.rnn.num_directions != 1:
            raise ValueError("model: expected a char-RNN with a unidirectional Recurrent")
        model = copy.deepcopy(model).eval()  # the one given is left as it is (device, dtype)
        self.embedding, self.rnn, self.head = model.embedding, model.rnn, model.head
        self.step_fn = model.rnn.cell_type.step_function(model.rnn.nonlinearity)
        self.lstm = model.rnn.is_lstm

    def forward(self, ids: Tensor, h: Tensor, c: Tensor | None = None) -> tuple[Tensor, ...]:
        x = self.embedding(ids)  # (N, E)
        hs, cs = [], []
        for layer in range(self.rnn.num_layers):
            w_ih, w_hh, b_ih, b_hh = _weights(self.rnn, layer, 0)
            gi = F.linear(x, w_ih, b_ih)  # (N, G*H)
            if self.lstm:
                assert c is not None
                new = self.step_fn(gi, LSTMState(h[layer], c[layer]), w_hh, b_hh)
                assert isinstance(new, LSTMState)
                x = new.h  # (N, H)
                cs.append(new.c)
            else:
                x = self.step_fn(gi, h[layer], w_hh, b_hh)  # (N, H)
                assert isinstance(x, Tensor)
            hs.append(x)
        logits = self.head(x)  # (N, V)
        if self.lstm:
            return logits, torch.stack(hs), torch.stack(cs)  # (L, N, H) each
        return logits, torch.stack(hs)


@torch.library.custom_op("rnnkit::recurrent_sequence", mutates_args=())
def recurrent_sequence(
    x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, cell: str, nonlinearity: str
) -> Tensor:
    """One direction of one layer over a batch-first sequence ``x`` ``(N, T, H_in)`` from a zero state:
    the outputs ``(N, T, H)``, by torch's own ``lstm``/``gru``/``rnn_tanh``/``rnn_relu``.

    An op of its own so that the exporter sees it whole: ``torch.export`` unrolls ``rnn_tanh`` over the
    example's length, and traces ``lstm`` and ``gru`` through slow step-by-step decompositions to learn
    their output's shape, which :func:`_recurrent_shape` gives at once. :func:`_recurrent_onnx` writes
    it as ONNX's ``LSTM``, ``GRU`` or ``RNN`` operator."""
    h0 = x.new_zeros(1, x.shape[0], w_hh.shape[1])  # (1, N, H)
    weights = [w_ih, w_hh, b_ih, b_hh]
    if cell == "lstm":
        return torch.lstm(x, (h0, h0), weights, True, 1, 0.0, False, False, True)[0]
    if cell == "gru":
        return torch.gru(x, h0, weights, True, 1, 0.0, False, False, True)[0]
    run = torch.rnn_relu if nonlinearity == "relu" else torch.rnn_tanh
    return run(x, h0, weights, True, 1, 0.0, False, False, True)[0]


@recurrent_sequence.register_fake
def _recurrent_shape(
    x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, cell: str, nonlinearity: str
) -> Tensor:
    return x.new_empty(x.shape[0], x.shape[1], w_hh.shape[1])


ONNX_GATES = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn": (0,)}
"""The gate blocks of PyTorch's weights (LSTM ``i, f, g, o``; GRU ``r, z, n``) in the order ONNX's
operators take them (LSTM ``i, o, f, c``; GRU ``z, r, h``)."""


def _recurrent_onnx(x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, cell: str, nonlinearity: str) -> Any:
    """:func:`recurrent_sequence` in ONNX: the ``LSTM``, ``GRU`` (``linear_before_reset=1``: the reset
    gate after the matrix product, as PyTorch) or ``RNN`` operator, time-major, one direction."""
    import onnxscript

    op: Any = onnxscript.opset20  # traced at export; onnxscript's stubs type ONNX's inputs too narrowly
    hidden = int(w_hh.shape[1])
    rows = [block * hidden + k for block in ONNX_GATES[cell] for k in range(hidden)]
    order = op.Constant(value_ints=rows)
    first, second = op.Constant(value_ints=[0]), op.Constant(value_ints=[1])  # axes

    def onnx_layout(weight: Any) -> Any:  # the gate blocks reordered, and a direction axis in front
        return op.Unsqueeze(op.Gather(weight, order, axis=0), first)

    args = (
        op.Transpose(x, perm=[1, 0, 2]),  # (T, N, H_in)
        onnx_layout(w_ih),  # (1, G*H, H_in)
        onnx_layout(w_hh),  # (1, G*H, H)
        op.Concat(onnx_layout(b_ih), onnx_layout(b_hh), axis=1),  # (1, 2*G*H)
    )
    if cell == "lstm":
        y, _, _ = op.LSTM(*args, hidden_size=hidden, direction="forward")
    elif cell == "gru":
        y, _ = op.GRU(*args, hidden_size=hidden, direction="forward", linear_before_reset=1)
    else:
        activation = "Relu" if nonlinearity == "relu" else "Tanh"
        y, _ = op.RNN(*args, hidden_size=hidden, direction="forward", activations=[activation])
    return op.Transpose(op.Squeeze(y, second), perm=[1, 0, 2])  # (T, 1, N, H) -> (N, T, H)


def _flip_within(x: Tensor, lengths: Tensor) -> Tensor:
    """Each sequence reversed within its own length, the padding left where it is: row b becomes
    ``x[b, T_b-1], ..., x[b, 0], x[b, T_b], ..., x[b, T-1]``. Its own inverse. ``x`` ``(N, T, F)``."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
    last = (lengths - 1)[:, None]  # (N, 1)
    index = torch.where(steps <= last, last - steps, steps)  # (N, T)
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))  # (N, T, F)


class PaddedRecurrent(nn.Module):
    """What a :class:`Recurrent` computes on a padded batch with ``lengths``, in ops ONNX can hold for any
    length: each layer and direction runs over the whole padded batch (:func:`recurrent_sequence`), the
    backward one on the sequences reversed within their lengths.

    Inputs: ``input`` ``(N, T, H_in)``, ``lengths`` ``(N,)``, zero initial state.

    Outputs: ``(output (N, T, D*H), h (L*D, N, H))``: as the Recurrent's, zero at padded steps, and the
    final outputs ``h`` of every layer and direction (forward at step ``T_b - 1``, backward at step 0).
    The LSTM's final memory cells are not computed (no classifier reads them): ``h`` is a plain tensor.
    """

    def __init__(self, rnn: Recurrent) -> None:
        super().__init__()
        self.rnn = rnn
        self.num_directions = rnn.num_directions
        self.num_layers = rnn.num_layers
        self.output_size = rnn.output_size

    def _direction(self, x: Tensor, weights: list[Tensor]) -> Tensor:
        """One direction of one layer over ``x`` ``(N, T, F)`` from zeros: ``(N, T, H)``."""
        return recurrent_sequence(x, *weights, self.rnn.cell, self.rnn.nonlinearity)

    def forward(self, input: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        lengths = lengths.to(input.device)
        steps = torch.arange(input.shape[1], device=input.device)
        real = (steps[None, :] < lengths[:, None])[:, :, None]  # (N, T, 1)
        last = (lengths - 1)[:, None, None].expand(-1, 1, self.rnn.hidden_size)  # (N, 1, H)
        finals: list[Tensor] = []
        x = input
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                weights = _weights(self.rnn, layer, direction)
                if direction == 0:
                    y = self._direction(x, weights)  # (N, T, H)
                    finals.append(y.gather(1, last)[:, 0])  # (N, H): the output at step T_b - 1
                else:
                    y = _flip_within(self._direction(_flip_within(x, lengths), weights), lengths)
                    finals.append(y[:, 0])  # (N, H): the backward direction ends at step 0
                outputs.append(y)
            x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # (N, T, D*H)
            x = x * real  # zero at padded steps, as the Recurrent's output
        return x, torch.stack(finals)  # (N, T, D*H), (L*D, N, H)


class ClassifierProbs(nn.Module):
    """A :class:`~rnnkit.tasks.classify.SequenceClassifier` with a :class:`PaddedRecurrent` for its RNN,
    and the softmax: ``(ids (N, T), lengths (N,)[, bigrams (N, T + 1)]) -> probs (N, C)``, the
    probabilities ``rnnkit classify predict`` reports. The model is copied: the one given is untouched."""

    def __init__(self, model: SequenceClassifier) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        self.model.add_module("rnn", PaddedRecurrent(self.model.rnn))  # replaces it: same call, same result

    def forward(self, ids: Tensor, lengths: Tensor, bigrams: Tensor | None = None) -> Tensor:
        return torch.softmax(self.model(ids, lengths, bigrams).float(), dim=-1)  # (N, C)


# -------------------------------------------------------------------------------------------------
# writing the files


@dataclass
class Exported:
    """What an export wrote."""

    model: Path
    """The ``.onnx`` file."""
    meta: Path
    """Its ``export.json``."""
    info: dict
    """The contents of ``export.json``."""

    def summary(self) -> str:
        """One line per file, and the signature: what ``rnnkit export`` prints."""
        inputs = ", ".join(f"{x['name']} {_shape(x['shape'])}" for x in self.info["inputs"])
        outputs = ", ".join(f"{x['name']} {_shape(x['shape'])}" for x in self.info["outputs"])
        return f"wrote {self.model} ({inputs} -> {outputs})\nwrote {self.meta}"


def _shape(shape: list) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"ONNX export needs {', '.join(missing)}: pip install 'rnnkit[export]' (installed by make)"
        )


def _targets(out: Path, name: str, force: bool) -> tuple[Path, Path]:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    model, meta = out / name, out / META
    taken = [p.name for p in (model, meta) if p.exists()]
    if taken and not force:
        raise UsageError(f"{out} already holds {' and '.join(taken)}; pass --force to replace them")
    out.mkdir(parents=True, exist_ok=True)
    return model, meta


def _check_size(model: nn.Module) -> None:
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    if size > MAX_BYTES:
        raise UsageError(f"the model's weights take {size / 1e9:.1f} GB; one ONNX file holds at most 1.8 GB")


def _onnx_export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: dict[str, dict[int, Any]],
) -> None:
    """``torch.onnx.export`` (dynamo) of ``module`` on CPU in fp32 into one self-contained file, written
    under a temporary name and renamed."""
    module = module.float().cpu().eval()
    table: dict[Callable[..., Any], Callable[..., Any]] = {
        torch.ops.rnnkit.recurrent_sequence.default: _recurrent_onnx
    }
    loggers = {name: logging.getLogger(name) for name in _EXPORTER_LOGS}
    levels = {name: log.level for name, log in loggers.items()}
    with warnings.catch_warnings(), torch.no_grad():
        for message, category in _EXPORTER_NOISE:
            warnings.filterwarnings("ignore", message=message, category=category)
        for name, log in loggers.items():
            log.setLevel(_EXPORTER_LOGS[name])
        try:
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=dynamic_shapes,
                opset_version=OPSET,
                custom_translation_table=table,
                external_data=False,
                verbose=False,
            )
        finally:
            for name, log in loggers.items():
                log.setLevel(levels[name])
    assert program is not None  # the dynamo exporter always returns its program
    partial = path.with_name(path.name + ".partial")
    program.save(str(partial), external_data=False)
    os.replace(partial, path)


def _write_json(path: Path, data: dict) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _io(name: str, dtype: str, shape: list) -> dict:
    return {"name": name, "dtype": dtype, "shape": shape}


def export_lm_step(loaded: LoadedLM, out: Path, *, force: bool = False, run: str = "") -> Exported:
    """Write the char-RNN's one-step function (``step.onnx``) and ``export.json`` into the folder ``out``.

    ``loaded`` is what ``rnnkit.load(run)`` gives for a char-RNN (a ``LoadedLM``); ``run`` is recorded
    in ``export.json``. Existing files are an error unless ``force``.
    """
    _need("onnx", "onnxscript")
    model, vocab = loaded.model, loaded.vocab
    _check_size(model)
    path, meta = _targets(out, LM_FILE, force)
    rnn: Recurrent = model.rnn
    layers, hidden, size = rnn.num_layers, rnn.hidden_size, len(vocab)
    batch = torch.export.Dim("batch", min=1)
    ids = torch.zeros(2, dtype=torch.long)  # the example: two streams (1 would fix the axis at 1)
    names = ["h", "c"] if rnn.is_lstm else ["h"]
    # a tensor of its own for each state input: the exporter would take one tensor passed twice for one input
    args = (ids, *(torch.zeros(layers, 2, hidden) for _ in names))
    shapes: dict[str, dict[int, Any]] = {"ids": {0: batch}} | {name: {1: batch} for name in names}
    outputs = ["logits", *(f"{name}_out" for name in names)]
    _onnx_export(LMStep(model), args, path, ["ids", *names], outputs, shapes)
    newline = vocab.id_of("\n")
    state = [layers, "N", hidden]
    info = {
        "format": "rnnkit-onnx",
        "version": META_VERSION,
        "task": "lm",
        "model": path.name,
        "run": run,
        "checkpoint": loaded.checkpoint,
        "opset": OPSET,
        "inputs": [_io("ids", "int64", ["N"]), *(_io(n, "float32", state) for n in names)],
        "outputs": [
            _io("logits", "float32", ["N", size]),
            *(_io(f"{n}_out", "float32", state) for n in names),
        ],
        "cell": rnn.cell,
        "num_layers": layers,
        "hidden_size": hidden,
        "state": names,
        "state_shape": state,
        "vocab": {
            "kind": vocab.kind,
            "size": size,
            "tokens": list(vocab.tokens),
            "unk_id": vocab.unk_id,
        },
        "empty_prime_id": newline if newline is not None else 0,
        "notes": (
            "Start from zeros for every state input; feed each prime id in turn, then each drawn id. "
            "vocab.tokens[i] is the character of id i (kind 'char'); for kind 'byte' the ids are the "
            "bytes of the UTF-8 text. rnnkit never writes unk_id (its logit is set to -inf before the "
            "draw). An empty prime is read as empty_prime_id."
        ),
    }
    _write_json(meta, info)
    return Exported(path, meta, info)


def export_classifier(
    loaded: LoadedClassifier | LoadedEnsemble, out: Path, *, force: bool = False, run: str = ""
) -> Exported:
    """Write the classifier (``classifier.onnx``: ids, lengths[, bigrams] -> probabilities) and
    ``export.json`` into the folder ``out``.

    ``loaded`` is what ``rnnkit.load(run)`` gives for a classifier run of one model (a
    ``LoadedClassifier``); ``run`` is recorded in ``export.json``.
    """
    from rnnkit.data.table import BOUNDARY, WORD_RE
    from rnnkit.tasks.classify.ensemble import LoadedEnsemble

    _need("onnx", "onnxscript")
    if isinstance(loaded, LoadedEnsemble):  # its members may not even share a vocabulary
        raise UsageError(
            f"{run or 'the run'} is an ensemble of {len(loaded.members)} classifiers; export one member: "
            f"rnnkit export {Path(run or 'RUN') / 'member-1'} --out DIR"
        )
    model, inputs = loaded.model, loaded.inputs
    _check_size(model)
    path, meta = _targets(out, CLASSIFIER_FILE, force)
    batch, length = torch.export.Dim("batch", min=1), torch.export.Dim("length", min=1)
    # the example: three rows of unequal lengths (a size of 1 would fix its axis at 1)
    ids = torch.tensor([[2, 3, 4, 5], [2, 3, 0, 0], [4, 0, 0, 0]], dtype=torch.long)
    lengths = torch.tensor([4, 2, 1])
    args: tuple[Tensor, ...] = (ids, lengths)
    names = ["ids", "lengths"]
    shapes: dict[str, dict[int, Any]] = {"ids": {0: batch, 1: length}, "lengths": {0: batch}}
    spec = [_io("ids", "int64", ["N", "T"]), _io("lengths", "int64", ["N"])]
    if inputs.bigrams is not None:
        args += (torch.tensor([[2, 3, 4, 5, 6], [2, 3, 4, 0, 0], [2, 3, 0, 0, 0]]),)
        names.append("bigrams")
        shapes["bigrams"] = {0: batch, 1: length + 1}
        spec.append(_io("bigrams", "int64", ["N", "T+1"]))
    labels = list(loaded.labels)
    _onnx_export(ClassifierProbs(model), args, path, names, ["probs"], shapes)
    vocab = inputs.vocab
    info = {
        "format": "rnnkit-onnx",
        "version": META_VERSION,
        "task": "classify",
        "model": path.name,
        "run": run,
        "checkpoint": loaded.checkpoint,
        "opset": OPSET,
        "inputs": spec,
        "outputs": [_io("probs", "float32", ["N", len(labels)])],
        "labels": labels,
        "tokens": inputs.kind,
        "word_pattern": WORD_RE.pattern,
        "max_tokens": inputs.max_tokens,
        "truncate": inputs.truncate,
        "vocab": list(vocab.tokens),
        "pad_id": vocab.pad_id,
        "unk_id": vocab.unk_id,
        "bigrams": None
        if inputs.bigrams is None
        else {"tokens": list(inputs.bigrams.tokens), "boundary": BOUNDARY, "join": "\t"},
        "notes": (
            "Tokens: for 'char', the text's characters without whitespace; for 'word', "
            "re.findall(word_pattern, text.lower()). At most max_tokens, cut as truncate says (head: the "
            "first). A token not in vocab is unk_id; pad rows with pad_id to the longest. Bigrams (when "
            "not null): for tokens t1..tn the n + 1 keys boundary+join+t1, t1+join+t2, "
            "..., tn+join+boundary, looked up in bigrams.tokens (unk_id when missing), padded with "
            "pad_id to T + 1."
        ),
    }
    _write_json(meta, info)
    return Exported(path, meta, info)


def export_run(
    run: Path, out: Path, *, format: str = "onnx", checkpoint: str = "best", force: bool = False
) -> Exported:
    """What ``rnnkit export`` does: load the run (:func:`rnnkit.tasks.load_run`) and export it, a char-RNN
    as its one-step function, a classifier as ids and lengths to probabilities."""
    from rnnkit.tasks import load_run, task_of

    if format not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}")
    task = task_of(Path(run), checkpoint)
    if task not in ("lm", "classify"):
        raise UsageError(f"export supports lm and classify for now ({run} holds a {task} model)")
    loaded = load_run(Path(run), checkpoint, task=task)
    export = export_lm_step if task == "lm" else export_classifier
    return export(loaded, Path(out), force=force, run=str(run))


# -------------------------------------------------------------------------------------------------
# running the char-RNN's step with onnxruntime


def read_meta(folder: Path, task: str) -> dict:
    """The ``export.json`` of an export folder, checked to be of ``task``."""
    path = Path(folder) / META
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; export with rnnkit export RUN --out {folder}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != "rnnkit-onnx" or info.get("task") != task:
        raise CheckpointError(f"{path}: not an rnnkit export of a {task} model")
    if info.get("version") != META_VERSION:
        raise CheckpointError(
            f"{path}: export format {info.get('version')}, this rnnkit reads {META_VERSION}"
        )
    return info


class OnnxCharLM:
    """An exported char-RNN step (``step.onnx`` and ``export.json`` in ``folder``) run by onnxruntime.

    :meth:`step` is the graph itself on NumPy arrays; :meth:`generate` writes text exactly as ``rnnkit
    sample`` does: the same prime handling, the unknown token never written, and each token drawn by
    :func:`rnnkit.generate.next_token` (torch's ``multinomial`` with a ``torch.Generator`` seeded by
    ``seed``) from the logits onnxruntime returns. Same seed and sampling settings, same text.

    Examples:
        >>> lm = OnnxCharLM("runs/export/lm-onnx")  # doctest: +SKIP
        >>> lm.generate("ROMEO:", 200, temperature=0.8, seed=1)  # doctest: +SKIP
    """

    def __init__(self, folder: Path | str, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        _need("onnxruntime")
        import onnxruntime

        self.folder = Path(folder)
        self.info = read_meta(self.folder, "lm")
        v = self.info["vocab"]
        self.vocab = Vocabulary(kind=v["kind"], tokens=list(v["tokens"]), unk=v["unk_id"] is not None)
        self.state_names: list[str] = list(self.info["state"])
        self.layers, self.hidden = int(self.info["num_layers"]), int(self.info["hidden_size"])
        self.session = onnxruntime.InferenceSession(
            str(self.folder / self.info["model"]), providers=list(providers)
        )

    def zero_state(self, batch: int = 1) -> list[np.ndarray]:
        """The initial state of ``batch`` streams: one zero ``(L, N, H)`` array per state input."""
        return [np.zeros((self.layers, batch, self.hidden), np.float32) for _ in self.state_names]

    def step(self, ids: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One token per stream: ``ids`` ``(N,)`` -> logits ``(N, V)`` and the new state."""
        feed = {"ids": np.asarray(ids, dtype=np.int64)} | dict(zip(self.state_names, state, strict=True))
        logits, *new = self.session.run(None, feed)
        return logits, new

    def generate(
        self,
        prime: str = "\n",
        length: int = 200,
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> str:
        """``length`` characters after ``prime`` (not repeated), as ``rnnkit sample --prime PRIME --length
        LENGTH --temperature T --top-k K --top-p P --seed SEED`` writes them after its prime."""
        from rnnkit.generate import SamplingConfig, apply_mask, next_token, prime_ids

        config = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
        if length < 0:
            raise UsageError(f"length: expected 0 or more, got {length}")
        banned = [self.vocab.unk_id] if self.vocab.unk_id is not None else []
        generator = torch.Generator()
        if seed is not None:
            generator.manual_seed(seed)
        else:
            generator.seed()
        state = self.zero_state(1)
        for token in prime_ids(self.vocab, prime):  # the prime, one id at a time
            logits, state = self.step(np.array([token]), state)
        decoder, text = self.vocab.decoder(), []
        for _ in range(length):
            drawn = next_token(apply_mask(torch.from_numpy(logits), None, banned), config, generator)
            text.append(decoder(int(drawn[0])))
            logits, state = self.step(drawn.numpy(), state)
        text.append(decoder.flush())
        return "".join(text)


__all__ = [
    "CLASSIFIER_FILE",
    "FORMATS",
    "LM_FILE",
    "META",
    "ClassifierProbs",
    "Exported",
    "LMStep",
    "OnnxCharLM",
    "PaddedRecurrent",
    "export_classifier",
    "export_lm_step",
    "export_run",
    "read_meta",
]
