"""Writing with narrower weights (issue #20, item 3): ``precision`` in generation and the stepper.

bf16 and int8 store the recurrent matrices narrower; each path must stay reproducible for a fixed
seed, stay close to fp32 in what it predicts, and really hold the narrow type. ``auto`` picks bf16
only where :mod:`rnnkit.train.hardware` says the hardware computes it natively (mocked here, so the
tests mean the same on a CPU with or without AVX512-BF16).
"""

from __future__ import annotations

import pytest
import torch
from tests.helpers import run_cli

from rnnkit import generate
from rnnkit.config import to_dict
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import CheckpointError, UsageError
from rnnkit.generate import SamplingConfig, generate_pieces, sample, sampling_precision, step_function
from rnnkit.nn import LSTMCell, LSTMState, Stepper
from rnnkit.tasks.lm import CharLM, ModelConfig, get_preset
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import hardware

TEXT = "the cat sat on a mat and the dog ran far away home.\nA quick brown fox? Yes! (jumps)\n" * 4
NARROW = ["bf16", "int8"]


@pytest.fixture(autouse=True)
def native_bf16(monkeypatch):
    """bf16 counts as native unless a test says otherwise: its path then runs on any CPU."""
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: these models are small, and on a busy 2-core machine two threads wait on each
    other at every small op (seconds instead of milliseconds per test)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def char_model(cell: str = "lstm", layers: int = 2, hidden: int = 128, seed: int = 0):
    """An untrained char model whose distributions are peaky and whose state matters: the head and the
    recurrent matrices scaled up, as a trained model's are (not so far that the vanilla RNN turns
    chaotic, where any rounding, fp32's own included, grows without bound)."""
    vocab = Vocabulary.from_text(TEXT)
    torch.manual_seed(seed)
    model = CharLM(
        len(vocab), ModelConfig(cell=cell, hidden_size=hidden, num_layers=layers, embedding_size=16)
    )
    with torch.no_grad():
        model.head.weight.mul_(8.0)
        for name, weight in model.rnn.named_parameters():
            if name.startswith("weight"):
                weight.mul_(2.0)
    return model.eval(), vocab


def text_of(model, vocab, precision: str, seed: int, length: int = 200) -> str:
    config = SamplingConfig(temperature=1.0)
    pieces = generate_pieces(model, vocab, "the ", length, config, seed=seed, precision=precision)
    return "".join(piece.text for piece in pieces)


# -------------------------------------------------------------------------------------------------
# reproducible, and fp32 unchanged


@pytest.mark.parametrize("precision", ["fp32", *NARROW])
def test_each_precision_writes_the_same_text_for_the_same_seed(precision):
    model, vocab = char_model()
    first = text_of(model, vocab, precision, seed=3)
    assert text_of(model, vocab, precision, seed=3) == first
    assert text_of(model, vocab, precision, seed=4) != first  # it samples: the seed matters
    assert len(set(first)) > 10


@pytest.mark.parametrize("precision", NARROW)
def test_a_fresh_model_with_the_same_weights_writes_the_same_text(precision):
    """Reproducible across builds of the narrow weights (quantization is deterministic), not only
    through the cache that keeps one build per model."""
    a, vocab = char_model(seed=1)
    b, _ = char_model(seed=1)
    assert text_of(a, vocab, precision, seed=9) == text_of(b, vocab, precision, seed=9)


def test_fp32_is_the_default_and_goes_through_the_models_own_step():
    model, vocab = char_model()
    assert step_function(model) == model.step and step_function(model, "fp32") == model.step
    assert text_of(model, vocab, "fp32", seed=5) == "".join(
        p.text for p in generate_pieces(model, vocab, "the ", 200, SamplingConfig(temperature=1.0), seed=5)
    )


@pytest.mark.parametrize("precision", NARROW)
def test_beam_search_runs_in_each_precision(precision):
    model, vocab = char_model()
    pieces = generate_pieces(model, vocab, "the ", 20, SamplingConfig(), beam=3, precision=precision)
    tokens = [p.token for p in pieces]
    assert len(tokens) == 20 and tokens == [
        p.token
        for p in generate_pieces(model, vocab, "the ", 20, SamplingConfig(), beam=3, precision=precision)
    ]


def test_the_narrow_paths_draw_with_the_temperatures_softmax():
    """Their draws (:class:`rnnkit.generate.NoiseDraws`, Gumbel-max from noise drawn in blocks) pick
    each token as often as softmax(logits / T) says, never a masked one, and the same ones for a seed."""
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]])
    for temperature in (0.7, 1.0, 1.5):
        draws = generate.NoiseDraws(torch.Generator().manual_seed(0), temperature)
        picked = torch.cat([draws(logits) for _ in range(6000)])  # > 1 block of noise
        share = torch.bincount(picked, minlength=5).float() / len(picked)
        expected = torch.softmax(logits[0] / temperature, -1)
        assert share[4] == 0 and (share - expected).abs().max() < 0.02  # 3 sigma: 0.019
        again = generate.NoiseDraws(torch.Generator().manual_seed(0), temperature)
        assert torch.equal(torch.cat([again(logits) for _ in range(6000)]), picked)


def test_the_narrow_paths_keep_next_token_for_top_k_top_p_and_greedy(monkeypatch):
    model, _ = char_model()
    calls: list[SamplingConfig] = []
    real = generate.next_token
    monkeypatch.setattr(generate, "next_token", lambda lg, c, g: calls.append(c) or real(lg, c, g))
    for config in (SamplingConfig(top_k=3), SamplingConfig(top_p=0.9), SamplingConfig(temperature=0)):
        calls.clear()
        assert len(list(sample(model, [1], 5, config, seed=0, precision="int8"))) == 5
        assert len(calls) == 5
    calls.clear()
    assert len(list(sample(model, [1], 5, SamplingConfig(temperature=0.8), seed=0, precision="int8"))) == 5
    assert calls == []  # plain temperature sampling: the block draws
    assert len(list(sample(model, [1], 5, SamplingConfig(temperature=0.8), seed=0))) == 5
    assert len(calls) == 5  # fp32: next_token, its tokens unchanged


# -------------------------------------------------------------------------------------------------
# close to fp32


def kl_along(model, tokens: torch.Tensor, precision: str) -> torch.Tensor:
    """KL(fp32 || narrow) of the next-token distribution at each step of ``tokens`` read by both (each
    path carrying its own state, so the rounding accumulates as it does when writing)."""
    exact = Stepper(model.embedding, model.rnn, model.head)
    narrow = Stepper(model.embedding, model.rnn, model.head, precision=precision)
    kls, exact_state, narrow_state = [], None, None
    for token in tokens:
        p, exact_state = exact.step(token[None], exact_state)
        q, narrow_state = narrow.step(token[None], narrow_state)
        log_p, log_q = p.log_softmax(-1), q.log_softmax(-1)
        kls.append((log_p.exp() * (log_p - log_q)).sum())
    return torch.stack(kls)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("precision", NARROW)
def test_narrow_next_token_distributions_stay_close_to_fp32(cell, precision):
    """Tolerance: a mean KL(fp32 || narrow) under 0.005 nats per step, none over 0.05. The KL is what
    the narrow model loses, in nats per character, on text the fp32 model would write: half the 0.01
    nats/char that bench/sample_speed.py reports (measured here: 1e-7 to 1.5e-3, the vanilla RNN with
    int8 the worst). The rounding: bf16 keeps 8 significant bits (relative error 2^-9 per weight), int8
    one of 255 levels per row (error up to max|w|/254), and its inputs are quantized at each call."""
    model, vocab = char_model(cell)
    tokens = torch.as_tensor(vocab.encode(TEXT[:150]), dtype=torch.long)
    kl = kl_along(model, tokens, precision)
    assert kl.mean() < 0.005 and kl.max() < 0.05
    assert kl.mean() > 0  # the weights really are rounded: not the fp32 path under another name


# -------------------------------------------------------------------------------------------------
# the narrow LSTM in place (Stream, LSTMCell.update_doubled_)


def test_the_in_place_update_from_doubled_g_is_the_lstm_update():
    """tanh(g) = 2 sigmoid(2g) - 1: the update from doubled-g pre-activations is update()'s to float
    rounding, writes h where it is told (a strided view of a wider buffer here) and c in place."""
    torch.manual_seed(0)
    n, size = 3, 16
    gates, c = torch.randn(n, 4 * size) * 3, torch.randn(n, size)
    expected = LSTMCell.update(gates, c)
    buffer = torch.zeros(n, 3 * size)
    c_in_place = c.clone()
    doubled = LSTMCell.double_g(gates.t()).t().contiguous()  # double_g doubles rows: (4H, N) here
    LSTMCell.update_doubled_(doubled, c_in_place, buffer[:, size : 2 * size])
    torch.testing.assert_close(buffer[:, size : 2 * size], expected.h, atol=2e-6, rtol=0)
    torch.testing.assert_close(c_in_place, expected.c, atol=2e-6, rtol=0)
    assert not buffer[:, :size].any() and not buffer[:, 2 * size :].any()  # only its slice written


@pytest.mark.parametrize("precision", NARROW)
@pytest.mark.parametrize(("layers", "streams"), [(1, 1), (2, 1), (3, 1), (2, 3)])
def test_a_stream_advancing_in_place_computes_what_step_computes(precision, layers, streams):
    """Each token through one Stream (its state in place) gives exactly the logits and state of
    Stepper.step carrying the state from call to call, from a given state, for any depth and number of
    streams; both stay close to the fp32 stepper (whose update is the plain one); and step leaves the
    state it was given untouched."""
    model, vocab = char_model(layers=layers, hidden=32)
    stepper = Stepper(model.embedding, model.rnn, model.head, precision=precision)
    exact = Stepper(model.embedding, model.rnn, model.head)
    torch.manual_seed(1)
    start = LSTMState(torch.randn(layers, streams, 32) * 0.5, torch.randn(layers, streams, 32))
    stream, state, exact_state = stepper.stream(start, streams), start, start
    kept = LSTMState(start.h.clone(), start.c.clone())
    tokens = torch.as_tensor(vocab.encode(TEXT[: 40 * streams]), dtype=torch.long).view(streams, 40)
    for t in range(40):
        ids = tokens[:, t]
        logits, state = stepper.step(ids, state)
        assert torch.equal(stream.advance(ids), logits)
        now = stream.state
        assert torch.equal(now.h, state.h) and torch.equal(now.c, state.c)
        p, exact_state = exact.step(ids, exact_state)
        log_p, log_q = p.log_softmax(-1), logits.log_softmax(-1)
        assert (log_p.exp() * (log_p - log_q)).sum(-1).max() < 0.05  # the KL bound of the test above
    assert torch.equal(start.h, kept.h) and torch.equal(start.c, kept.c)


@pytest.mark.parametrize(("layers", "streams"), [(1, 1), (2, 1), (3, 1), (2, 3), (3, 3)])
def test_the_in_place_form_in_fp32_is_the_plain_stepper_to_float_rounding(layers, streams):
    """The in-place form's arithmetic on its own, without the narrow weights' rounding: an fp32 stepper
    with ``in_place=True`` (g blocks doubled in the table, the biases and every matrix; the layer
    inputs as slices of one buffer) gives the plain fp32 stepper's logits and states to float rounding,
    token after token, from a given state, for any depth and number of streams."""
    model, vocab = char_model(layers=layers, hidden=32)
    assert all(bias.abs().max() > 0 for name, bias in model.rnn.named_parameters() if "bias" in name)
    plain = Stepper(model.embedding, model.rnn, model.head)
    in_place = Stepper(model.embedding, model.rnn, model.head, in_place=True)
    assert in_place.doubled_g and not plain.doubled_g
    torch.manual_seed(2)
    state = LSTMState(torch.randn(layers, streams, 32) * 0.5, torch.randn(layers, streams, 32))
    stream = in_place.stream(state, streams)
    tokens = torch.as_tensor(vocab.encode(TEXT[: 60 * streams]), dtype=torch.long).view(streams, 60)
    for t in range(60):
        logits, state = plain.step(tokens[:, t], state)
        torch.testing.assert_close(stream.advance(tokens[:, t]), logits, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(stream.state.h, state.h, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(stream.state.c, state.c, atol=1e-5, rtol=1e-5)
    gru = char_model("gru")[0]
    with pytest.raises(ValueError, match="in_place: for the LSTM only"):
        Stepper(gru.embedding, gru.rnn, gru.head, in_place=True)


def test_a_stream_of_a_functional_stepper_starts_from_zeros_and_hands_out_copies():
    model, _ = char_model("gru", hidden=32)
    stepper = Stepper(model.embedding, model.rnn, model.head, precision="int8")
    stream = stepper.stream(None, 2)
    assert torch.equal(stream.state, torch.zeros(2, 2, 32))  # not advanced yet
    logits = stream.advance(torch.tensor([1, 2]))
    expected, state = stepper.step(torch.tensor([1, 2]))
    assert torch.equal(logits, expected) and torch.equal(stream.state, state)
    stream.state.add_(1.0)  # a copy: the stream's own state is untouched
    assert torch.equal(stream.state, state)


@pytest.mark.parametrize("precision", NARROW)
def test_sampling_on_a_narrow_path_is_its_stepper_read_token_by_token(precision):
    """sample() advances the narrow paths through a Stream: the tokens are those of its stepper's
    step() drawn with the same block noise, from the prime's state."""
    model, vocab = char_model()
    config = SamplingConfig(temperature=0.9)
    prime = vocab.encode("the ").tolist()
    drawn = [int(t) for t in sample(model, prime, 150, config, seed=5, precision=precision)]
    step = step_function(model, precision)
    generator = torch.Generator().manual_seed(5)
    draws = generate.NoiseDraws(generator, 0.9)
    with torch.no_grad():
        logits, state = model(torch.tensor([prime]))
        logits, expected = logits[:, -1], []
        for _ in range(150):
            token = draws(logits)
            expected.append(int(token))
            logits, state = step(token, state)
    assert drawn == expected and len(set(drawn)) > 10


# -------------------------------------------------------------------------------------------------
# the narrow types are really there


@pytest.mark.parametrize(("cell", "matrices"), [("lstm", 2), ("gru", 3), ("rnn", 2)])
def test_the_int8_paths_matrices_are_int8(cell, matrices):
    model, _ = char_model(cell, hidden=64)
    stepper = Stepper(model.embedding, model.rnn, model.head, precision="int8")
    fp32 = Stepper(model.embedding, model.rnn, model.head)
    assert len(stepper.projections) == matrices  # layer 0's W_hh; layer 1's [W_ih W_hh] (GRU: apart)
    for projection in stepper.projections:
        assert projection.weight is projection.packed  # what each call reads, held once
        weight, _ = torch.ops.quantized.linear_unpack(projection.packed)
        assert weight.dtype == torch.qint8 and weight.int_repr().dtype == torch.int8
        assert weight.qscheme() == torch.per_channel_affine  # one scale per output row
        assert int(weight.int_repr().abs().max()) == 127  # symmetric: each row's largest weight at 127
    # the dequantized int8 matrices are the fp32 ones to half a step of their row's scale (the narrow
    # LSTM stores its g block doubled: LSTMCell.update_doubled_ reads tanh(g) as 2 sigmoid(2g) - 1)
    w_hh0 = model.rnn.weight_hh_l0.detach()
    if cell == "lstm":
        stored = LSTMCell.double_g(w_hh0)  # hidden 64: g is rows 128-191
        assert torch.equal(stored[128:192], 2 * w_hh0[128:192])
        assert torch.equal(stored[:128], w_hh0[:128]) and torch.equal(stored[192:], w_hh0[192:])
        w_hh0 = stored
    step = w_hh0.abs().amax(1, keepdim=True) / 127
    dequantized = torch.ops.quantized.linear_unpack(stepper.projections[0].packed)[0].dequantize()
    assert ((dequantized - w_hh0).abs() <= step / 2 + 1e-7).all()
    assert stepper.weight_bytes < fp32.weight_bytes / 3.5  # a quarter, plus the scales


def test_the_bf16_paths_matrices_are_bf16():
    model, _ = char_model()
    stepper = Stepper(model.embedding, model.rnn, model.head, precision="bf16")
    fp32 = Stepper(model.embedding, model.rnn, model.head)
    assert [p.weight.dtype for p in stepper.projections] == [torch.bfloat16] * 2
    assert stepper.weight_bytes * 2 == fp32.weight_bytes
    assert stepper.table.dtype == stepper.head_w.dtype == torch.float32  # read a row at a time / tiny


def test_generation_steps_through_a_stepper_of_the_precision_asked_for():
    model, _ = char_model()
    step = step_function(model, "int8")
    stepper = step.__self__  # type: ignore[attr-defined]
    assert isinstance(stepper, Stepper) and stepper.precision == "int8"
    assert step_function(model, "int8").__self__ is stepper  # type: ignore[attr-defined]  # built once
    with torch.no_grad():
        model.head.bias.add_(1.0)  # in place, as an optimizer step does
    rebuilt = step_function(model, "int8").__self__  # type: ignore[attr-defined]
    assert rebuilt is not stepper
    torch.testing.assert_close(rebuilt.head_b, model.head.bias)


# -------------------------------------------------------------------------------------------------
# choosing the precision


def test_auto_is_bf16_only_where_the_hardware_says_bf16_is_native(monkeypatch):
    cpu = torch.device("cpu")
    model, vocab = char_model()
    assert sampling_precision("auto", cpu) == "bf16"
    assert step_function(model, "auto").__self__.precision == "bf16"  # type: ignore[attr-defined]
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    assert sampling_precision("auto", cpu) == "fp32"
    assert step_function(model, "auto") == model.step
    assert text_of(model, vocab, "auto", seed=2) == text_of(model, vocab, "fp32", seed=2)
    with pytest.raises(UsageError, match="--precision bf16: this CPU"):
        sampling_precision("bf16", cpu)  # asked for explicitly where it is not native: refused, as in train
    assert sampling_precision("int8", cpu) == "int8"  # int8 needs no bf16


def test_a_bad_precision_is_a_one_line_usage_error():
    model, vocab = char_model()
    with pytest.raises(UsageError, match="--precision: expected one of fp32, bf16, int8, auto, got 'fp8'"):
        text_of(model, vocab, "fp8", seed=0)
    with pytest.raises(UsageError, match="--precision int8: PyTorch's int8 kernels run on the CPU only"):
        sampling_precision("int8", torch.device("cuda"))


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_model_with_broken_weights_is_a_one_line_error_not_garbage(precision):
    """The sampler draws as torch.multinomial does without its per-token checks of the probabilities;
    the prime's logits are checked instead, once."""
    model, vocab = char_model(hidden=16)
    with torch.no_grad():
        model.head.bias[3] = float("nan")
    with pytest.raises(CheckpointError, match="not finite"):
        text_of(model, vocab, precision, seed=0)


def test_a_torch_without_int8_quantization_is_a_one_line_usage_error(monkeypatch):
    model, vocab = char_model(hidden=16)
    monkeypatch.delattr(torch, "quantize_per_channel")  # as a torch after the deprecation may be
    with pytest.raises(UsageError, match=r"--precision int8: not available in this PyTorch \(no dynamic"):
        text_of(model, vocab, "int8", seed=0)


def test_a_model_without_the_char_rnn_layout_is_refused_for_narrow_weights():
    class Other(torch.nn.Module):  # steps, but is not embedding -> Recurrent -> linear
        def __init__(self):
            super().__init__()
            self.inner, _ = char_model(hidden=16)
            self.vocab_size = self.inner.vocab_size

        def forward(self, ids, state=None):
            return self.inner(ids, state)

        def step(self, ids, state=None):
            return self.inner.step(ids, state)

    model = Other().eval()
    assert len(list(sample(model, [1], 5, SamplingConfig(), seed=0))) == 5  # fp32: fine
    with pytest.raises(UsageError, match="--precision int8: only for embedding -> recurrent -> linear"):
        list(sample(model, [1], 5, SamplingConfig(), seed=0, precision="int8"))


# -------------------------------------------------------------------------------------------------
# the command line


@pytest.fixture
def run(tmp_path):
    """A run folder holding :func:`char_model`'s weights (no training needed)."""
    model, vocab = char_model(hidden=64)
    config = get_preset("tiny")
    config.model = model.config
    saved = {"format_version": ckpt.FORMAT_VERSION, "task": "lm", "config": to_dict(config)}
    saved["vocab"] = vocab.to_dict()
    ckpt.save_checkpoint(tmp_path / "run", 0, model_state=model.state_dict(), config=saved, state_tensors={},
                         trainer_state={}, best=True)  # fmt: skip
    return tmp_path / "run", model, vocab


@pytest.mark.parametrize("precision", ["int8", "bf16", "auto", None])
def test_rnnkit_sample_precision_writes_the_librarys_text(run, capsys, monkeypatch, precision):
    folder, model, vocab = run
    asked: list[str] = []
    real = generate.step_function
    monkeypatch.setattr(generate, "step_function", lambda m, p="fp32": asked.append(p) or real(m, p))
    more = [] if precision is None else ["--precision", precision]
    code, out, _ = run_cli(capsys, "sample", folder, "--prime", "the ", "--length", 120, "--seed", 7,
                           "--temperature", 1.0, *more)  # fmt: skip
    assert code == 0
    assert asked == [precision or "fp32"]  # the option reaches the generator; fp32 by default
    assert out == "the " + text_of(model, vocab, precision or "fp32", seed=7, length=120) + "\n"


def test_rnnkit_sample_refuses_an_unknown_precision_in_one_line(run, capsys):
    code, out, err = run_cli(capsys, "sample", run[0], "--precision", "fp8", "--seed", 1)
    assert code != 0
    assert "--precision" in err and "Traceback" not in err + out
