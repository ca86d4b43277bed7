import itertools

import pytest
import torch
import torchcrf

from graphmner.data.labels import bio_to_bioes, bioes_tag_set
from graphmner.nn.crf import CRF, bio_constraints, bioes_constraints

LABELS = ['O', 'B-PER', 'I-PER', 'B-LOC', 'I-LOC', 'B-ORG', 'I-ORG',
          'B-MISC', 'I-MISC']


def random_batch(generator, num_tags=9, max_batch=32, max_len=40):
    batch_size = int(torch.randint(1, max_batch + 1, (1, ),
                                   generator=generator))
    seq_len = int(torch.randint(1, max_len + 1, (1, ), generator=generator))
    emissions = torch.randn(batch_size, seq_len, num_tags,
                            generator=generator)
    lengths = torch.randint(1, seq_len + 1, (batch_size, ),
                            generator=generator)
    mask = torch.arange(seq_len) < lengths.unsqueeze(1)
    tags = torch.randint(0, num_tags, (batch_size, seq_len),
                         generator=generator)
    return emissions, mask, tags


def reference_for(crf):
    """A pytorch-crf CRF scoring exactly like :obj:`crf`, constraints
    included."""
    reference = torchcrf.CRF(crf.num_tags, batch_first=True)
    with torch.no_grad():
        start, transitions, end = crf._scores()
        reference.start_transitions.copy_(start)
        reference.transitions.copy_(transitions)
        reference.end_transitions.copy_(end)
    return reference


def assert_same_paths(tags, paths, mask):
    assert tags.dtype == torch.long and tags.shape == mask.shape
    assert bool((tags[~mask] == -1).all())
    for row, length, path in zip(tags.tolist(), mask.sum(1).tolist(), paths):
        assert row[:length] == path


def test_crf_repr_and_state_dict():
    crf = CRF(9)
    assert str(crf) == 'CRF(num_tags=9, constrained=False)'
    assert str(CRF(9, constraints=bio_constraints(LABELS))) == \
        'CRF(num_tags=9, constrained=True)'
    # Interchangeable with pytorch-crf checkpoints.
    reference = torchcrf.CRF(9, batch_first=True)
    assert set(crf.state_dict()) == set(reference.state_dict())
    crf.load_state_dict(reference.state_dict())
    assert torch.equal(crf.transitions, reference.transitions)
    crf.reset_parameters()
    assert not torch.equal(crf.transitions, reference.transitions)


@pytest.mark.parametrize('constrained', [False, True])
def test_decode_matches_torchcrf(constrained):
    generator = torch.Generator().manual_seed(0)
    for _ in range(25):
        crf = CRF(9, constraints=bio_constraints(LABELS)
                  if constrained else None)
        reference = reference_for(crf)
        emissions, mask, _ = random_batch(generator)
        assert_same_paths(crf.decode(emissions, mask),
                          reference.decode(emissions, mask), mask)


def test_decode_breaks_ties_like_torchcrf():
    # Small integer scores make exact ties between paths the rule.
    generator = torch.Generator().manual_seed(1)
    crf = CRF(4)
    for _ in range(25):
        with torch.no_grad():
            for parameter in crf.parameters():
                parameter.copy_(torch.randint(-1, 2, parameter.shape,
                                              generator=generator))
        emissions, mask, _ = random_batch(generator, num_tags=4, max_len=12)
        emissions = emissions.round()
        assert_same_paths(crf.decode(emissions, mask),
                          reference_for(crf).decode(emissions, mask), mask)


@pytest.mark.parametrize('dtype', [torch.float64, torch.bfloat16])
def test_decode_promotes_dtypes_like_torchcrf(dtype):
    # float32 parameters meet the emissions in the promoted dtype.
    generator = torch.Generator().manual_seed(4)
    crf = CRF(9)
    for _ in range(5):
        emissions, mask, _ = random_batch(generator)
        emissions = emissions.to(dtype)
        assert_same_paths(crf.decode(emissions, mask),
                          reference_for(crf).decode(emissions, mask), mask)


def test_decode_many_tags():
    # More tags than a uint8 rank can count.
    generator = torch.Generator().manual_seed(5)
    crf = CRF(300)
    emissions, mask, _ = random_batch(generator, num_tags=300, max_batch=4,
                                      max_len=6)
    assert_same_paths(crf.decode(emissions, mask),
                      reference_for(crf).decode(emissions, mask), mask)


def test_decode_without_mask_and_single_step():
    crf = CRF(5)
    emissions = torch.randn(3, 1, 5)
    tags = crf.decode(emissions)
    assert tags.shape == (3, 1)
    assert tags.view(-1).tolist() == [
        path[0] for path in reference_for(crf).decode(emissions)]


def test_decode_does_not_record_gradients():
    emissions = torch.randn(2, 4, 3, requires_grad=True)
    assert not CRF(3).decode(emissions).requires_grad


@pytest.mark.parametrize('reduction', ['sum', 'mean', 'none', 'token_mean'])
def test_nll_matches_torchcrf(reduction):
    generator = torch.Generator().manual_seed(2)
    for constrained in (False, True):
        crf = CRF(9, constraints=bio_constraints(LABELS)
                  if constrained else None)
        reference = reference_for(crf)
        emissions, mask, tags = random_batch(generator)
        expected = -reference(emissions, tags, mask, reduction=reduction)
        torch.testing.assert_close(crf.nll(emissions, tags, mask, reduction),
                                   expected)
        torch.testing.assert_close(
            crf(emissions, tags, mask, reduction=reduction), -expected)


def test_nll_gradients_match_torchcrf():
    generator = torch.Generator().manual_seed(3)
    crf = CRF(9)
    reference = reference_for(crf)
    emissions, mask, tags = random_batch(generator, max_batch=8, max_len=10)
    ours_emissions = emissions.clone().requires_grad_()
    reference_emissions = emissions.clone().requires_grad_()
    crf.nll(ours_emissions, tags, mask).backward()
    (-reference(reference_emissions, tags, mask, reduction='mean')).backward()
    torch.testing.assert_close(ours_emissions.grad, reference_emissions.grad)
    for name in ('start_transitions', 'transitions', 'end_transitions'):
        torch.testing.assert_close(getattr(crf, name).grad,
                                   getattr(reference, name).grad)


def test_nll_ignores_tags_at_padding():
    crf = CRF(3)
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    tags = torch.tensor([[0, 1, 2, 1], [2, 0, 1, 1]])
    padded = tags.masked_fill(~mask, -100)
    torch.testing.assert_close(crf.nll(emissions, padded, mask, 'none'),
                               crf.nll(emissions, tags, mask, 'none'))


def brute_force_marginals(crf, emissions, length):
    """Token marginals of one sequence by enumerating every path."""
    start, transitions, end = crf._scores()
    num_tags = emissions.size(-1)
    paths = list(itertools.product(range(num_tags), repeat=length))
    scores = []
    for path in paths:
        score = start[path[0]] + end[path[-1]]
        score = score + sum(emissions[t, tag] for t, tag in enumerate(path))
        score = score + sum(transitions[a, b] for a, b in itertools.pairwise(path))
        scores.append(score)
    probs = torch.stack(scores).softmax(0)
    marginals = torch.zeros(length, num_tags)
    for prob, path in zip(probs, paths):
        for t, tag in enumerate(path):
            marginals[t, tag] += prob
    return marginals


@pytest.mark.parametrize('constrained', [False, True])
def test_marginals_match_brute_force(constrained):
    torch.manual_seed(4)
    constraints = bio_constraints(['O', 'B-PER', 'I-PER'])
    crf = CRF(3, constraints=constraints if constrained else None)
    with torch.no_grad():
        crf.transitions.normal_()
    emissions = torch.randn(3, 3, 3)
    mask = torch.tensor([[True, True, True], [True, True, False],
                         [True, False, False]])
    marginals = crf.marginals(emissions, mask).detach()
    for b, length in enumerate(mask.sum(1).tolist()):
        expected = brute_force_marginals(crf, emissions[b], length)
        torch.testing.assert_close(marginals[b, :length], expected)
        assert bool((marginals[b, length:] == 0).all())
    if constrained:  # I-PER can neither start nor follow O
        assert float(marginals[:, 0, 2].max()) < 1e-6


def test_tempered_marginals():
    torch.manual_seed(5)
    crf = CRF(3)
    emissions = torch.randn(2, 3, 3)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    log_p = crf.log_marginals(emissions, mask)
    tempered = crf.marginals(emissions, mask, temperature=4.0)
    expected = (log_p / 4.0).softmax(-1) * mask.unsqueeze(2)
    torch.testing.assert_close(tempered, expected)
    assert bool((crf.log_marginals(emissions, mask, 2.0)[~mask] == 0).all())


def test_marginals_sum_to_one_and_are_differentiable():
    generator = torch.Generator().manual_seed(6)
    crf = CRF(9, constraints=bio_constraints(LABELS))
    emissions, mask, _ = random_batch(generator)
    emissions.requires_grad_()
    marginals = crf.marginals(emissions, mask)
    torch.testing.assert_close(marginals.sum(-1), mask.float())
    (marginals[..., 1] * mask).sum().backward()
    assert torch.isfinite(emissions.grad).all()
    assert crf.transitions.grad is not None


def test_bio_constraints():
    allowed, start = bio_constraints(['O', 'B-PER', 'I-PER', 'B-LOC',
                                      'I-LOC'])
    assert start.tolist() == [True, True, False, True, False]
    # rows: from; columns: to
    assert allowed.tolist() == [
        [True, True, False, True, False],
        [True, True, True, True, False],
        [True, True, True, True, False],
        [True, True, False, True, True],
        [True, True, False, True, True],
    ]
    with pytest.raises(ValueError, match="Malformed label 'S-PER'"):
        bio_constraints(['O', 'S-PER'])


def test_bioes_constraints_by_hand():
    tags = bioes_tag_set(['O', 'B-PER', 'I-PER'])
    assert tags == ('O', 'B-PER', 'I-PER', 'E-PER', 'S-PER')
    allowed, start, end = bioes_constraints(tags)
    assert start.tolist() == [True, True, False, False, True]
    assert end.tolist() == [True, False, False, True, True]
    assert allowed.tolist() == [  # rows: from O, B, I, E, S; columns: to
        [True, True, False, False, True],
        [False, False, True, True, False],
        [False, False, True, True, False],
        [True, True, False, False, True],
        [True, True, False, False, True],
    ]


def test_bioes_constraints_allow_every_converted_sequence():
    generator = torch.Generator().manual_seed(11)
    tags = bioes_tag_set(LABELS)
    allowed, start, end = bioes_constraints(tags)
    tag_id = {tag: i for i, tag in enumerate(tags)}
    for _ in range(300):
        length = int(torch.randint(1, 12, (1,), generator=generator))
        bio = [LABELS[int(i)] for i in torch.randint(0, 9, (length,), generator=generator)]
        ids = [tag_id[tag] for tag in bio_to_bioes(bio)]
        assert start[ids[0]] and end[ids[-1]]
        assert all(allowed[a, b] for a, b in zip(ids, ids[1:]))


def test_end_constraint_applies_in_decode_and_marginals():
    tags = bioes_tag_set(['O', 'B-PER', 'I-PER'])
    crf = CRF(5, constraints=bioes_constraints(tags))
    emissions = torch.zeros(1, 2, 5)
    emissions[0, 1, 1] = 5.0  # tempt a final B-PER, which BIOES forbids
    path = crf.decode(emissions)[0].tolist()
    assert tags[path[-1]] in ('O', 'E-PER', 'S-PER')
    assert float(crf.marginals(emissions)[0, 1, 1].detach()) < 1e-6


def test_constrained_decode_obeys_constraints():
    generator = torch.Generator().manual_seed(7)
    allowed, start = bio_constraints(LABELS)
    crf = CRF(9, constraints=(allowed, start))
    inside = torch.tensor([label.startswith('I-') for label in LABELS])
    for _ in range(10):
        emissions, mask, _ = random_batch(generator)
        emissions = emissions + 3.0 * inside  # tempt the decoder
        tags = crf.decode(emissions, mask)
        assert bool(start[tags[:, 0]].all())
        prev, curr = tags[:, :-1], tags[:, 1:]
        real = mask[:, 1:]
        assert bool(allowed[prev[real], curr[real]].all())
    unconstrained = CRF(9)
    unconstrained.load_state_dict(crf.state_dict())
    assert not bool(start[unconstrained.decode(emissions, mask)[:, 0]].all())


def test_constrained_nll_penalises_invalid_gold():
    crf = CRF(9, constraints=bio_constraints(LABELS))
    emissions = torch.zeros(1, 2, 9)
    valid = crf.nll(emissions, torch.tensor([[1, 2]]))  # B-PER I-PER
    invalid = crf.nll(emissions, torch.tensor([[0, 2]]))  # O I-PER
    assert valid.item() < 10 and invalid.item() > 9000


def test_input_validation():
    crf = CRF(3)
    emissions = torch.randn(2, 4, 3)
    tags = torch.zeros(2, 4, dtype=torch.long)
    mask = torch.ones(2, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match='bool mask, got dtype torch.uint8'):
        crf.decode(emissions, mask.to(torch.uint8))
    with pytest.raises(ValueError, match=r'shape \(2, 4\), got \(2, 3\)'):
        crf.decode(emissions, mask[:, :3])
    with pytest.raises(ValueError, match=r'off in rows \[1\]'):
        crf.nll(emissions, tags, torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])
                .bool())
    with pytest.raises(ValueError, match=r'prefix \(length\) mask, got rows '
                       r'\[0\]'):
        crf.marginals(emissions, torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0]])
                      .bool())
    with pytest.raises(ValueError, match=r'\(B, T >= 1, 3\), got \(2, 4, 5\)'):
        crf.decode(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r'\(B, T >= 1, 3\), got \(2, 0, 3\)'):
        crf.decode(torch.randn(2, 0, 3))
    with pytest.raises(ValueError, match=r'tags of shape \(2, 4\), got '
                       r'torch.int64 \(4,\)'):
        crf.nll(emissions, tags[0], mask)
    with pytest.raises(ValueError, match=r'got torch.int32 \(2, 4\)'):
        crf.nll(emissions, tags.int(), mask)
    with pytest.raises(ValueError, match="got 'batch'"):
        crf.nll(emissions, tags, mask, reduction='batch')
    with pytest.raises(ValueError, match='positive temperature, got 0'):
        crf.marginals(emissions, mask, temperature=0)
    with pytest.raises(ValueError, match=r'shapes \(3, 3\), \(3,\)\[, \(3,\)\], '
                       r'got 2: torch.bool \(2, 2\), torch.bool \(3,\)'):
        CRF(3, constraints=(torch.ones(2, 2, dtype=torch.bool),
                            torch.ones(3, dtype=torch.bool)))
    with pytest.raises(ValueError, match=r'got 1: torch.bool \(3, 3\)'):
        CRF(3, constraints=(torch.ones(3, 3, dtype=torch.bool), ))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_decode_and_marginals_on_cuda():
    generator = torch.Generator().manual_seed(8)
    crf = CRF(9, constraints=bio_constraints(LABELS))
    emissions, mask, tags = random_batch(generator)
    expected_tags = crf.decode(emissions, mask)
    expected_nll = crf.nll(emissions, tags, mask)
    crf = crf.cuda()
    assert torch.equal(crf.decode(emissions.cuda(), mask.cuda()).cpu(),
                       expected_tags)
    torch.testing.assert_close(
        crf.nll(emissions.cuda(), tags.cuda(), mask.cuda()).cpu(),
        expected_nll)
