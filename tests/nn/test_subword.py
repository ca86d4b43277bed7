"""graphmner.nn.subword: word nodes split into pieces, pieces folded back to words; the encoder's
piece states; the subword unit's targets."""
import pytest
import torch
from conftest import batch_for
from torch_geometric.data import Batch, HeteroData

from graphmner import models
from graphmner.data.conll import Tweet
from graphmner.graph import schema
from graphmner.graph.builder import build_graph
from graphmner.nn.encoder import TextEncoder
from graphmner.nn.subword import SubwordNodes, first_pieces


def _graph():
    """3 words (pieces 1, 3, 2), 2 objects; object 0 grounds word 1 and object 1 word 2, with
    an edge attribute; a word-word edge 1 -> 2."""
    g = HeteroData()
    g.words = ['Rob', 'unbelievably', 'fishy']
    g[schema.WORD].num_nodes = 3
    g[schema.WORD].y = torch.tensor([1, 0, 3])
    g[schema.WORD].position = torch.arange(3)
    g[schema.OBJECT].x = torch.randn(2, 4)
    g[schema.GROUNDS].edge_index = torch.tensor([[0, 1], [1, 2]])
    g[schema.GROUNDS].weight = torch.tensor([0.25, 0.75])
    g[schema.WORD_INTRA].edge_index = torch.tensor([[1], [2]])
    return g


def test_word_nodes_become_pieces_and_their_edges_follow():
    g = SubwordNodes(lambda words: [{'Rob': 1, 'unbelievably': 3, 'fishy': 2}[w] for w in words], 9)(_graph())
    word = g[schema.WORD]
    assert word.num_nodes == 6
    assert word.first.tolist() == [True, True, False, False, True, False]
    assert word.y.tolist() == [1, 0, 9, 9, 3, 9]           # continuation pieces: X (id 9)
    assert word.position.tolist() == [0, 1, 1, 1, 2, 2]    # each piece keeps its word's attributes
    # object 0 -> pieces 1, 2, 3 of word 1; object 1 -> pieces 4, 5 of word 2; the weights follow
    assert g[schema.GROUNDS].edge_index.tolist() == [[0, 0, 0, 1, 1], [1, 2, 3, 4, 5]]
    assert g[schema.GROUNDS].weight.tolist() == [0.25, 0.25, 0.25, 0.75, 0.75]
    # word 1 -> word 2: every piece of 1 to every piece of 2
    pairs = sorted(zip(*g[schema.WORD_INTRA].edge_index.tolist()))
    assert pairs == [(1, 4), (1, 5), (2, 4), (2, 5), (3, 4), (3, 5)]
    assert g.words == ['Rob', 'unbelievably', 'fishy']     # scores are on the words
    with pytest.raises(ValueError, match='already subword pieces'):
        SubwordNodes(lambda words: [1] * len(words), 9)(g)
    with pytest.raises(ValueError, match="3 word nodes but its 'words' list 2 words"):
        SubwordNodes(lambda words: [1, 1], 9)(_graph())


def test_first_pieces_reads_each_words_first_piece_per_tweet():
    first = torch.tensor([True, False, True, True, False, False])
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    per_piece = [['B-PER', 'X', 'O'], ['B-LOC', 'X', 'I-LOC']]
    assert first_pieces(per_piece, first, batch) == [['B-PER', 'O'], ['B-LOC']]


def test_the_encoder_gives_every_piece_a_state_and_the_first_is_the_word_state(tiny_encoder):
    words = [['Rob', 'unbelievably', 'fishy'], ['dog']]
    encoder = TextEncoder(tiny_encoder, subword_states=True).eval()
    counts = [encoder.pieces_per_word(tweet) for tweet in words]
    assert counts[0][1] > 1 and counts[1] == [1]
    with torch.no_grad():
        pieces, plain = encoder(words), encoder(words, subword_states=False)
    assert pieces.word_mask.sum(1).tolist() == [sum(c) for c in counts]
    firsts = torch.tensor([0, 1, 1 + counts[0][1]])
    torch.testing.assert_close(pieces.words[0, firsts], plain.words[0, :3])
    # the pieces are the tokenizer's, in order: a continuation state is its piece's own
    ids = encoder.tokenize(words).input_ids[0]
    assert encoder.tokenizer.convert_ids_to_tokens(ids[2:2 + counts[0][1]].tolist())[1].startswith('##')
    assert not torch.equal(pieces.words[0, 1], pieces.words[0, 2])


def test_subword_targets_label_first_pieces_and_x_the_rest(tiny_encoder):
    """With the file's labels (repair_targets off) a first piece takes its word's label as written
    (a stray I- stays I-) and continuation pieces X; repaired targets the same but repaired."""
    tweet = Tweet('t', ['Rob', 'unbelievably', 'fishy'], ['I-PER', 'O', 'B-LOC'])
    kwargs = dict(encoder=tiny_encoder, tagging_unit='subword', constrained_decoding=False)
    raw = models.build('bert-crf', repair_targets=False, **kwargs)
    repaired = models.build('bert-crf', **kwargs)
    x, counts = raw.tags.index('X'), raw.encoder.pieces_per_word(tweet.words)
    assert counts[1] > 1

    def expect(first_label):
        return [tag for label, n in zip([first_label, 'O', 'B-LOC'], counts)
                for tag in [raw.tags.index(label), *[x] * (n - 1)]]
    graph = build_graph(tweet, None)
    assert raw.target_tags(batch_for(raw, [graph]))[0].tolist() == expect('I-PER')
    assert repaired.target_tags(batch_for(repaired, [graph]))[0].tolist() == expect('B-PER')
    assert isinstance(batch_for(raw, [graph]), Batch)


def test_a_tweet_read_in_windows_gives_each_piece_from_its_words_window(tiny_encoder, long_tweet):
    """Over max_length the pieces come from the window each word is read from: every piece gets a
    state and the first pieces' are the word-mode states."""
    encoder = TextEncoder(tiny_encoder, max_length=8, subword_states=True).eval()
    words = [long_tweet.words + ['unbelievably']]
    counts = encoder.pieces_per_word(words[0])
    with torch.no_grad():
        enc = encoder.tokenize(words)
        pieces, plain = encoder(words, encoded=enc), encoder(words, subword_states=False)
    assert enc.input_ids.shape[0] > 1  # several windows
    assert int(pieces.word_mask.sum()) == sum(counts) > len(words[0])
    firsts = torch.tensor([sum(counts[:i]) for i in range(len(counts))])
    torch.testing.assert_close(pieces.words[0, firsts], plain.words[0, :len(counts)])
    # a word's pieces sit side by side in one row
    rows, index = enc.word_row[0], enc.word_index[0]
    for start, n in zip(firsts.tolist(), counts):
        assert rows[start:start + n].unique().numel() == 1
        assert index[start:start + n].tolist() == list(range(int(index[start]), int(index[start]) + n))
