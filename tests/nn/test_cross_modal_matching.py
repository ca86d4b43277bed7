"""MAF's cross-modal matching: which tweets are swapped, the classifier over
[T ; C] pooled over words, and M = P(matched) * C."""
import pytest
import torch

from graphmner.nn.cross_modal_matching import CrossModalMatching, swap_order


def test_the_last_2k_candidates_swap_half_against_half():
    order = swap_order(torch.ones(20, dtype=torch.bool), 16)
    expected = list(range(4)) + list(range(12, 20)) + list(range(4, 12))
    assert order.tolist() == expected


def test_only_candidates_are_swapped():
    candidates = torch.tensor([True, False, True, True, False, True, True])
    order = swap_order(candidates, 4)  # candidates 0, 2, 3, 5, 6: the last four swap
    assert order.tolist() == [0, 1, 5, 6, 4, 2, 3]


@pytest.mark.parametrize('count', [0, 3, 16])
def test_no_swap_without_more_candidates_than_2k(count):
    candidates = torch.zeros(20, dtype=torch.bool)
    candidates[:count] = True
    assert swap_order(candidates, 16).tolist() == list(range(20))


def test_2k_must_be_even():
    with pytest.raises(ValueError, match='even.*got 3'):
        swap_order(torch.ones(8, dtype=torch.bool), 3)
    with pytest.raises(ValueError, match='even.*got -2'):
        CrossModalMatching(4, num_negatives=-2)


@pytest.fixture
def states():
    """3 tweets of 2, 4 and 3 words, d = 4; zero at padding, as the encoder gives."""
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    text = torch.randn(3, 4, 4) * mask.unsqueeze(-1)
    visual = torch.randn(3, 4, 4) * mask.unsqueeze(-1)
    return text, visual, mask


def test_matches_hand_computation_in_eval(states):
    text, visual, mask = states
    cm = CrossModalMatching(4, num_negatives=2).eval()
    out = cm(text, visual, mask, torch.ones(3, dtype=torch.bool))
    W, b = cm.classifier.weight, cm.classifier.bias
    for i, n in enumerate(mask.sum(1).tolist()):
        pooled = torch.cat([text[i, :n], visual[i, :n]], dim=-1).mean(0)  # mean over the tweet's words
        logits = W @ pooled + b
        torch.testing.assert_close(out.logits[i], logits)
        torch.testing.assert_close(out.visual[i], logits.softmax(-1)[1] * visual[i])
    assert out.target.tolist() == [1, 1, 1]  # no negatives at evaluation


def test_training_swaps_c_and_labels_the_swapped_rows(states):
    text, visual, mask = states
    cm = CrossModalMatching(4, num_negatives=2).train()
    out = cm(text, visual, mask, torch.ones(3, dtype=torch.bool))
    assert out.target.tolist() == [1, 0, 0]  # tweets 1 and 2 swap
    p = out.logits.softmax(-1)[:, 1]
    # Tweet 1 (4 words) takes tweet 2's C, zero-padded; tweet 2 (3 words) takes tweet 1's, cut.
    torch.testing.assert_close(out.visual[1, :3], p[1] * visual[2, :3])
    assert torch.equal(out.visual[1, 3], torch.zeros(4))
    torch.testing.assert_close(out.visual[2, :3], p[2] * visual[1, :3])
    assert torch.equal(out.visual[2, 3], torch.zeros(4))
    torch.testing.assert_close(out.visual[0], p[0] * visual[0])


def test_a_batch_of_2k_gets_no_negative_even_in_training(states):
    text, visual, mask = states
    cm = CrossModalMatching(4, num_negatives=2).train()
    out = cm(text, visual, mask, torch.tensor([True, False, True]))
    assert out.target.tolist() == [1, 1, 1]


def test_the_official_form_flattens_padded_word_slots(states):
    """positions=L: [T ; C] of L word slots, zero-padded, flattened (Linear(2d * L, 2))."""
    text, visual, mask = states
    cm = CrossModalMatching(4, positions=6).eval()
    assert cm.classifier.in_features == 2 * 4 * 6
    out = cm(text, visual, mask, torch.ones(3, dtype=torch.bool))
    W, b = cm.classifier.weight, cm.classifier.bias
    for i, n in enumerate(mask.sum(1).tolist()):
        slots = torch.zeros(6, 8)
        slots[:n] = torch.cat([text[i, :n], visual[i, :n]], dim=-1)
        torch.testing.assert_close(out.logits[i], W @ slots.flatten() + b)
    # Fewer slots than words: the words past L are not read.
    short = CrossModalMatching(4, positions=2).eval()
    changed = text.clone()
    changed[:, 2:] += 1.0
    ones = torch.ones(3, dtype=torch.bool)
    torch.testing.assert_close(short(changed, visual, mask, ones).logits,
                               short(text, visual, mask, ones).logits)
    with pytest.raises(ValueError, match="'positions' must be positive or None, got 0"):
        CrossModalMatching(4, positions=0)


def test_explains_bad_shapes(states):
    text, visual, mask = states
    cm = CrossModalMatching(4)
    with pytest.raises(ValueError, match=r'\[B, T, 4\], got \(3, 4, 4\) and \(3, 4, 5\)'):
        cm(text, torch.randn(3, 4, 5), mask, torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="'candidates' \\[B\\]"):
        cm(text, visual, mask, torch.ones(2, dtype=torch.bool))
