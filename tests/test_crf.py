"""The linear-chain CRF against brute-force enumeration (``nn/crf.py``)."""

from __future__ import annotations

import itertools

import pytest
import torch

from rnnkit.nn.crf import CRF


def path_score(crf: CRF, emissions: torch.Tensor, path: tuple[int, ...]) -> float:
    """s(y) written out term by term, independently of the CRF's own code."""
    total = float(crf.start[path[0]]) + float(crf.end[path[-1]])
    total += sum(float(emissions[t, tag]) for t, tag in enumerate(path))
    total += sum(float(crf.transitions[a, b]) for a, b in itertools.pairwise(path))
    return total


@torch.no_grad()
def brute_force(crf: CRF, emissions: torch.Tensor, length: int):
    """Every tag sequence of one sentence: (log partition, best sequence, all scores)."""
    scores = {p: path_score(crf, emissions, p) for p in itertools.product(range(crf.num_tags), repeat=length)}
    values = torch.tensor(list(scores.values()), dtype=torch.float64)
    return float(torch.logsumexp(values, 0)), list(max(scores, key=scores.get)), scores


@pytest.mark.parametrize("seed", range(4))
def test_crf_forward_algorithm_and_viterbi_equal_brute_force(seed):
    torch.manual_seed(seed)
    crf = CRF(3).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(3, 4, 3, dtype=torch.float64)
    lengths = torch.tensor([4, 2, 1])
    with torch.no_grad():
        log_z = crf.log_partition(emissions, lengths)
    decoded = crf.decode(emissions, lengths)
    for b, n in enumerate(lengths.tolist()):
        expected_z, best, scores = brute_force(crf, emissions[b], n)
        assert float(log_z[b]) == pytest.approx(expected_z, abs=1e-9)
        assert decoded[b] == best
        tags = torch.tensor([best + [2] * (4 - n)])
        with torch.no_grad():
            assert float(crf.score(emissions[b : b + 1], tags, torch.tensor([n]))[0]) == pytest.approx(
                scores[tuple(best)], abs=1e-9
            )
            nll = crf(emissions[b : b + 1], tags, torch.tensor([n]))
        assert float(nll[0]) == pytest.approx(expected_z - scores[tuple(best)], abs=1e-9)


def test_crf_ignores_whatever_lies_past_each_length():
    torch.manual_seed(0)
    crf = CRF(4)
    emissions = torch.randn(2, 6, 4)
    tags = torch.randint(0, 4, (2, 6))
    lengths = torch.tensor([6, 3])
    other = emissions.clone()
    other[1, 3:] = 100.0
    other_tags = tags.clone()
    other_tags[1, 3:] = 0
    torch.testing.assert_close(crf(emissions, tags, lengths), crf(other, other_tags, lengths))
    assert crf.decode(emissions, lengths) == crf.decode(other, lengths)
    assert [len(x) for x in crf.decode(emissions, lengths)] == [6, 3]


def test_crf_gradients_check():
    torch.manual_seed(1)
    crf = CRF(3).double()
    emissions = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    tags = torch.randint(0, 3, (2, 4))
    lengths = torch.tensor([4, 3])
    assert torch.autograd.gradcheck(lambda e: crf(e, tags, lengths).sum(), (emissions,))
