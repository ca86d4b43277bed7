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
    assert enc.truncated_words == 0 and enc.truncated_aux > 0
    assert enc.input_ids.shape[1] <= 12
    assert enc.word_mask.sum().item() == 9
    sep = encoder.tokenizer.sep_token_id
    assert (enc.input_ids[0] == sep).sum() == 2  # [CLS] words [SEP] aux [SEP]


def test_long_tweet_is_truncated_with_a_warning_and_every_word_kept(tiny_encoder):
    encoder = TextEncoder(tiny_encoder, max_length=6)
    with pytest.warns(UserWarning, match='did not fit'):
        out = encoder(WORDS)
    assert out.word_mask.sum().item() == 9  # no word is dropped from tagging


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
