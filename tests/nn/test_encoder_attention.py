"""TextEncoder.recording_attention: the weights SDPA applied, as eager attention reports them."""
import torch

from graphmner.nn.encoder import PREFIX_ATTENTION, TextEncoder


def test_recorded_weights_equal_eager_attention(tiny_encoder):
    encoder = TextEncoder(tiny_encoder).eval()
    words = [['Rob', 'after', 'a', 'fish', 'dinner'], ['Paris']]
    with torch.no_grad(), encoder.recording_attention() as record:
        out = encoder(words)
    assert len(record) == encoder.num_layers and encoder._attention[0].graphmner_record is None
    enc = encoder.tokenize(words)
    encoder.model.config._attn_implementation = 'eager'
    try:
        with torch.no_grad():
            eager = encoder.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                                  output_attentions=True)
    finally:
        encoder.model.config._attn_implementation = PREFIX_ATTENTION
    assert torch.allclose(eager.last_hidden_state, encoder.model(input_ids=enc.input_ids,
                          attention_mask=enc.attention_mask).last_hidden_state, atol=1e-5)
    real = enc.attention_mask.bool()
    for recorded, reference in zip(record, eager.attentions):
        assert torch.allclose(recorded.transpose(1, 2)[real], reference.transpose(1, 2)[real], atol=1e-5)
    assert out.words.shape[:2] == (2, 5)


def test_recorded_weights_with_a_prefix_sum_to_one_and_skip_masked_slots(tiny_encoder):
    encoder = TextEncoder(tiny_encoder).eval()
    H, P = encoder.hidden_size, 3
    prefix = [(torch.randn(2, P, H), torch.randn(2, P, H)) for _ in range(encoder.num_layers)]
    mask = torch.tensor([[True, False, True], [False, False, False]])
    with torch.no_grad(), encoder.recording_attention() as record:
        encoder([['a', 'fish'], ['Paris', 'tonight']], layer_prefix=prefix, prefix_mask=mask)
    for weights in record:
        assert weights.shape[-1] == P + 4  # [CLS] a fish [SEP]
        assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]))
        assert (weights[0, :, :, 1] == 0).all() and (weights[1, :, :, :P] == 0).all()
