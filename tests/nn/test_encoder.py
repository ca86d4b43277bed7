import warnings

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from graphmner.nn.encoder import TextEncoder

WORDS = [['Handsome', 'Rob', 'after', 'a', 'fish', 'dinner'], ['RT', '@JayKenMinaj', 'George']]


@pytest.fixture(scope='module')
def encoder(tiny_encoder):
    return TextEncoder(tiny_encoder, max_length=32).eval()


def first_subwords(tokenizer_path, words):
    """Hugging Face's own tokenisation of pre-split words: input ids and, per tweet, the
    position of each word's first subword (from ``word_ids()``)."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    enc = tokenizer(words, is_split_into_words=True, padding=True, return_tensors='pt')
    firsts = []
    for b in range(len(words)):
        ids = enc.word_ids(b)
        firsts.append([ids.index(w) for w in range(len(words[b]))])
    return enc, firsts


def test_first_subword_pooling_matches_plain_model(encoder, tiny_encoder):
    out = encoder(WORDS)
    reference, firsts = first_subwords(tiny_encoder, WORDS)
    hidden = AutoModel.from_pretrained(tiny_encoder).eval()(
        input_ids=reference.input_ids, attention_mask=reference.attention_mask).last_hidden_state
    assert out.words.shape == (2, 6, encoder.hidden_size)
    assert out.word_mask.tolist() == [[True] * 6, [True] * 3 + [False] * 3]
    # '@JayKenMinaj' is several pieces, so the third word of tweet 1 does not start at position 3
    assert firsts[1] == [1, 2, 7]  # [CLS] rt @ jay ##ken ##mina ##j george
    assert torch.equal(encoder.tokenize(WORDS).input_ids, reference.input_ids)
    for b in range(2):
        torch.testing.assert_close(out.words[b, :len(firsts[b])], hidden[b, firsts[b]])
    assert out.words[1, 3:].abs().sum() == 0


def test_aux_segment_is_truncated_before_the_words(tiny_encoder):
    encoder = TextEncoder(tiny_encoder, max_length=12)
    aux = [['a', 'dog', 'on', 'the', 'grass', 'near', 'a', 'lake'], []]
    enc = encoder.tokenize(WORDS, aux)
    assert enc.input_ids.shape[0] == 2 and enc.truncated_aux > 0  # no tweet needs a second window
    assert enc.input_ids.shape[1] <= 12
    assert enc.word_mask.sum().item() == 9
    sep = encoder.tokenizer.sep_token_id
    assert (enc.input_ids[0] == sep).sum() == 2  # [CLS] words [SEP] aux [SEP]


REPEATED = ['RT', '@JayKenMinaj', 'George', 'Clooney', 'visits', 'Paris', '.'] * 12  # 84 words


def test_windows_advance_on_word_boundaries_with_the_overlap(tiny_encoder):
    encoder = TextEncoder(tiny_encoder, max_length=12, window_overlap=3)  # windows of 10 subwords
    assert encoder.windows([3] * 6) == [(0, 3), (2, 5), (4, 6)]
    assert encoder.windows([2, 2, 2]) == [(0, 3)]                         # fits: one window
    # a shared word longer than the overlap is not shared, and a window always advances
    assert encoder.windows([6, 4, 4, 4]) == [(0, 2), (2, 4)]
    assert encoder.windows([10, 10, 1]) == [(0, 1), (1, 2), (2, 3)]
    assert encoder.windows([]) == [(0, 0)]


def test_each_word_takes_the_window_where_it_is_farthest_from_a_cut():
    spans = [(0, 3), (2, 5), (4, 6)]
    offsets = [0, 3, 6, 9, 12, 15, 18]  # six words of three subwords
    # word 2 is at the cut of window 0 (0 subwords to its right) and the start of window 1
    # (0 to its left): a tie goes to the earlier window; word 3 is inside window 1 only
    assert TextEncoder._best_window(spans, offsets) == [0, 0, 0, 1, 1, 2]
    # words of one subword: word 2 has one subword of context on its cut side in both
    # windows (the text's own start and end are no cuts), word 3 none in window 0
    offsets = [0, 1, 2, 3, 4, 5, 6]
    assert TextEncoder._best_window([(0, 4), (1, 6)], offsets) == [0, 0, 0, 1, 1, 1]


def test_a_long_tweet_is_read_in_windows_and_never_from_sep(tiny_encoder):
    encoder = TextEncoder(tiny_encoder, max_length=32, window_overlap=8).eval()
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # nothing left to warn about: no word is cut
        enc = encoder.tokenize([REPEATED, WORDS[0]])
    windows = encoder.windows([len(p) for p in encoder._word_pieces(REPEATED)])
    assert len(windows) > 4 and enc.input_ids.shape == (len(windows) + 1, 32)
    assert enc.row_tweet.tolist() == [0] * len(windows) + [1]
    read = enc.input_ids[enc.word_row, enc.word_index][enc.word_mask]
    special = {encoder.tokenizer.cls_token_id, encoder.tokenizer.sep_token_id, encoder.tokenizer.pad_token_id}
    assert not set(read.tolist()) & special
    with torch.no_grad():
        out = encoder([REPEATED, WORDS[0]])
        # every word's state is its state in a plain pass over the words of its window
        for i in range(len(REPEATED)):
            start, end = windows[enc.word_row[0, i]]
            alone = encoder([REPEATED[start:end]]).words[0, i - start]
            torch.testing.assert_close(out.words[0, i], alone, atol=1e-6, rtol=1e-5)
        # the tweet that fits is unchanged by its long neighbour (up to the padding's rounding)
        torch.testing.assert_close(out.words[1, :6], encoder([WORDS[0]]).words[0])
    # the last repetition is read in context, like the first (not all from one [SEP] state)
    first, last = out.words[0, :7], out.words[0, -7:]
    assert all(not torch.equal(last[j], last[j + 1]) for j in range(6))
    assert (first - last).abs().max() < (first - first.roll(1, 0)).abs().max()


def test_window_sentence_vectors_are_the_mean_over_windows(tiny_encoder):
    encoder = TextEncoder(tiny_encoder, max_length=32, window_overlap=8, pooler=True).eval()
    windows = encoder.windows([len(p) for p in encoder._word_pieces(REPEATED)])
    with torch.no_grad():
        out = encoder([REPEATED])
        parts = encoder([REPEATED[start:end] for start, end in windows])
    for name in ('pooled', 'cls', 'pooler_output'):
        torch.testing.assert_close(getattr(out, name)[0], getattr(parts, name).mean(0))


def test_aux_words_go_with_the_windows_that_have_room(tiny_encoder):
    encoder = TextEncoder(tiny_encoder, max_length=16, window_overlap=4)
    words = [f'w{i}' for i in range(10)]  # 'w0' is two pieces: windows of 14 subwords
    aux = ['a', 'dog']
    enc = encoder.tokenize([words], [aux])
    sep = encoder.tokenizer.sep_token_id
    counts = [(row == sep).sum().item() for row in enc.input_ids]
    assert counts[0] == 1 and counts[-1] == 2     # a full first window, a short last one
    assert enc.aux_row.tolist() == [[enc.input_ids.shape[0] - 1] * 2] and enc.truncated_aux == 0
    assert enc.input_ids[enc.aux_row, enc.aux_index].tolist() == [
        encoder.tokenizer.convert_tokens_to_ids(aux)]
    # the tweet's words come first: with no room anywhere the aux words are cut, counted
    enc = encoder.tokenize([words + ['x'] * 4], [aux])
    assert enc.truncated_aux == 2 and not enc.aux_mask.any()


def test_a_window_prefix_is_its_tweets_prefix(tiny_encoder):
    encoder = TextEncoder(tiny_encoder, max_length=32, window_overlap=8).eval()
    windows = encoder.windows([len(p) for p in encoder._word_pieces(REPEATED)])
    torch.manual_seed(2)
    prefix = [(torch.randn(2, 3, 32), torch.randn(2, 3, 32)) for _ in range(encoder.num_layers)]
    mask = torch.tensor([[True, True, False], [False, False, False]])
    with torch.no_grad():
        out = encoder([REPEATED, WORDS[0]], layer_prefix=prefix, prefix_mask=mask)
        start, end = windows[-1]
        alone = encoder([REPEATED[start:end]], layer_prefix=[(k[:1], v[:1]) for k, v in prefix],
                        prefix_mask=mask[:1]).words[0, -1]
        plain = encoder([WORDS[0]]).words[0]
    torch.testing.assert_close(out.words[0, len(REPEATED) - 1], alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.words[1, :6], plain)  # the image-less tweet reads no prefix


def assert_fitting_tweets_get_exactly_the_plain_models_states(encoder, path):
    enc = encoder.tokenize(WORDS)
    assert enc.input_ids.shape[0] == 2 and enc.row_tweet.tolist() == [0, 1]
    model = AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        hidden = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
        out = encoder(WORDS, encoded=enc)
    _, firsts = first_subwords(path, WORDS)
    for b in range(2):
        assert torch.equal(out.words[b, :len(firsts[b])], hidden[b, firsts[b]])


def test_a_tweet_that_fits_gets_exactly_the_plain_models_states(encoder, tiny_encoder):
    assert_fitting_tweets_get_exactly_the_plain_models_states(encoder, tiny_encoder)


@pytest.mark.integration
def test_a_tweet_that_fits_gets_exactly_minilms_states(minilm):
    assert_fitting_tweets_get_exactly_the_plain_models_states(TextEncoder(minilm).eval(), minilm)


def test_bad_window_overlap_is_refused(tiny_encoder):
    with pytest.raises(ValueError, match=r"'window_overlap' must be between 0 and \(max_length - 2\) "
                                         r"// 2 = 15 subwords \(got 16\)"):
        TextEncoder(tiny_encoder, max_length=32, window_overlap=16)
    assert TextEncoder(tiny_encoder, max_length=130).window_overlap == 32


def test_bad_input_is_explained(encoder):
    with pytest.raises(TypeError, match='list of word lists'):
        encoder.tokenize(['a', 'flat', 'list'])
    with pytest.raises(ValueError, match='one list per tweet'):
        encoder.tokenize(WORDS, [['x']])


def test_layer_prefix_matches_a_hand_computed_first_layer(tiny_encoder):
    encoder = TextEncoder(tiny_encoder, max_length=32).eval()
    enc = encoder.tokenize(WORDS)
    B, P, H = 2, 3, encoder.hidden_size
    torch.manual_seed(0)
    prefix = [(torch.randn(B, P, H), torch.randn(B, P, H)) for _ in range(encoder.num_layers)]
    captured = {}
    layer = encoder.model.encoder.layer[0]
    handle = layer.register_forward_hook(
        lambda m, a, o: captured.setdefault('out', o[0] if isinstance(o, tuple) else o))
    encoder(WORDS, layer_prefix=prefix)
    handle.remove()

    # Hand computation of layer 0 with the prefix prepended to keys and values.
    with torch.no_grad():
        x = encoder.model.embeddings(input_ids=enc.input_ids)              # [B, L, H]
        att = layer.attention.self
        heads, d = encoder.num_heads, H // encoder.num_heads
        split = lambda t: t.view(B, -1, heads, d).transpose(1, 2)          # [B, h, *, d]
        q = split(att.query(x))
        k = torch.cat([split(prefix[0][0]), split(att.key(x))], dim=2)
        v = torch.cat([split(prefix[0][1]), split(att.value(x))], dim=2)
        keep = torch.cat([torch.ones(B, P, dtype=torch.bool), enc.attention_mask.bool()], dim=1)
        scores = (q @ k.transpose(-1, -2)) / d ** 0.5
        scores = scores.masked_fill(~keep[:, None, None, :], float('-inf'))
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, -1, H)
        attended = layer.attention.output(context, x)
        expected = layer.output(layer.intermediate(attended), attended)
    real = enc.attention_mask.bool()
    torch.testing.assert_close(captured['out'][real], expected[real], atol=1e-5, rtol=1e-4)


def test_prefix_is_gone_after_the_call(encoder):
    plain = encoder(WORDS).words
    prefix = [(torch.randn(2, 2, encoder.hidden_size),) * 2 for _ in range(encoder.num_layers)]
    assert not torch.allclose(encoder(WORDS, layer_prefix=prefix).words, plain)
    torch.testing.assert_close(encoder(WORDS).words, plain)
    with pytest.raises(ValueError, match='one \\(key, value\\) pair per layer'):
        encoder(WORDS, layer_prefix=prefix[:1])


@pytest.mark.integration
def test_real_minilm_encodes_words(minilm):
    """The pretrained MiniLM's word states are its first-subword states, and the sentence
    vector is sentence-transformers' mean pooling of the tweet read as one string."""
    encoder = TextEncoder(minilm).eval()
    out = encoder(WORDS)
    assert out.words.shape == (2, 6, 384) and out.pooled.shape == (2, 384)
    model = AutoModel.from_pretrained(minilm).eval()
    reference, firsts = first_subwords(minilm, WORDS)
    hidden = model(input_ids=reference.input_ids, attention_mask=reference.attention_mask).last_hidden_state
    for b in range(2):
        torch.testing.assert_close(out.words[b, :len(firsts[b])], hidden[b, firsts[b]], atol=1e-5, rtol=1e-4)
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    for b, words in enumerate(WORDS):
        sentence = tokenizer(' '.join(words), return_tensors='pt')
        states = model(**sentence).last_hidden_state[0]
        torch.testing.assert_close(out.pooled[b], states.mean(0), atol=1e-5, rtol=1e-4)


def test_a_tweet_reading_no_prefix_gets_exactly_the_prefix_free_states(encoder):
    B, P = 2, 3
    torch.manual_seed(1)
    prefix = [(torch.randn(B, P, encoder.hidden_size), torch.randn(B, P, encoder.hidden_size))
              for _ in range(encoder.num_layers)]
    plain = encoder(WORDS)
    # tweet 0 has no image (reads no prefix slot), tweet 1 reads two of its three slots
    mask = torch.tensor([[False, False, False], [True, True, False]])
    out = encoder(WORDS, layer_prefix=prefix, prefix_mask=mask)
    assert torch.equal(out.words[0], plain.words[0])
    assert not torch.allclose(out.words[1], plain.words[1])
    # a masked slot is not read: changing it changes nothing
    changed = [(k.clone(), v.clone()) for k, v in prefix]
    for k, v in changed:
        k[1, 2], v[1, 2] = 100.0, -100.0
    torch.testing.assert_close(encoder(WORDS, layer_prefix=changed, prefix_mask=mask).words, out.words)
    with pytest.raises(ValueError, match=r"'prefix_mask' must be \[B, P\] = \[2, 3\]"):
        encoder(WORDS, layer_prefix=prefix, prefix_mask=mask[:, :2])


def test_pooler_is_the_checkpoints_tanh_dense_on_cls(tiny_encoder):
    encoder = TextEncoder(tiny_encoder, pooler=True).eval()
    out = encoder(WORDS)
    saved = AutoModel.from_pretrained(tiny_encoder).pooler  # the fixture saved a BERT with a pooler
    torch.testing.assert_close(encoder.model.pooler.dense.weight, saved.dense.weight)
    expected = torch.tanh(out.cls @ saved.dense.weight.T + saved.dense.bias)
    torch.testing.assert_close(out.pooler_output, expected)
    assert TextEncoder(tiny_encoder).eval()(WORDS).pooler_output is None


def test_aux_segment_has_token_type_one(encoder):
    enc = encoder.tokenize(WORDS, [['a', 'dog'], []])
    sep = encoder.tokenizer.sep_token_id
    first_sep = (enc.input_ids[0] == sep).nonzero()[0].item()
    types = enc.token_type_ids[0, :int(enc.attention_mask[0].sum())].tolist()
    assert types == [0] * (first_sep + 1) + [1] * (len(types) - first_sep - 1) and types[-1] == 1
    assert enc.token_type_ids[1].sum() == 0  # no aux words: one segment
    # and the encoder reads them: the same ids with type 0 give other states
    typed = encoder(WORDS, [['a', 'dog'], []], encoded=enc).words
    enc.token_type_ids.zero_()
    assert not torch.allclose(encoder(WORDS, [['a', 'dog'], []], encoded=enc).words[0], typed[0])
