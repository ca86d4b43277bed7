import pytest
from conftest import SHARED, assert_names_first_faulty_line
from PIL import Image

from graphmner.features.image_text import (
    CaptionGenerator,
    aux_words,
    object_tags,
    read_captions,
    tokenize,
)

CAPTIONS = SHARED / 'data' / 'captions'
VOCAB = SHARED / 'models' / 'all-MiniLM-L6-v2' / 'vocab.txt'


@pytest.mark.parametrize('name,count', [('blip2_twitter2017.txt', 4819),
                                        ('blip2_twitter2015.txt', 8288)])
def test_real_blip2_files(name, count):
    path = CAPTIONS / name
    if not path.is_file():
        pytest.skip(f'{path} not found')
    captions = read_captions(path)
    assert len(captions) == count
    assert all(c == c.strip() for c in captions.values())
    if name == 'blip2_twitter2017.txt':
        assert captions['16_05_01_367'] == 'nolan k bushnell on twitter'
        # A colon inside the caption is part of it.
        assert captions['17_06_7873'] == 'a clock that is set to 5:00 pm'
    else:
        # Two images have an empty caption.
        assert captions['71406'] == '' and captions['770560'] == ''
        assert sum(c == '' for c in captions.values()) == 2


def test_reader_quirks(tmp_path):
    path = tmp_path / 'caps.txt'
    path.write_bytes('\ufeffa.jpg :first: one  \r\n\n'
                     'b.png:  second\r\n'
                     'c.jpg :\n'
                     'a.jpg :first: one\n'.encode())
    assert read_captions(path) == {'a': 'first: one', 'b': 'second', 'c': ''}


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / 'caps.txt'
    path.write_text('a.jpg :fine\nno separator here\n')
    with pytest.raises(ValueError, match=r'caps\.txt:2: expected'):
        read_captions(path)


def test_conflicting_duplicate(tmp_path):
    path = tmp_path / 'caps.txt'
    path.write_text('a.jpg :one\nb.jpg :x\na.jpg :two\n')
    with pytest.raises(ValueError, match=r'caps\.txt:3: .*line 1'):
        read_captions(path)


def test_tokenize():
    assert tokenize("a man's dog, at 5:00 pm!") == [
        'a', "man's", 'dog', ',', 'at', '5', ':', '00', 'pm', '!']
    assert tokenize('  ') == []


def test_object_tags():
    assert object_tags(['person', 'cell phone', 'person', 'dog']) == [
        'person', 'cell', 'phone', 'dog']
    assert object_tags([]) == []


def test_aux_words():
    captions = {'17_06_1': 'two dogs on a beach'}
    ocr = {'17_06_1': 'SALE 50%'}
    words = aux_words('17_06_1', captions=captions, tags=['dog', 'dog'],
                      ocr=ocr)
    assert words == [('two', 'caption'), ('dogs', 'caption'),
                     ('on', 'caption'), ('a', 'caption'),
                     ('beach', 'caption'), ('dog', 'tag'), ('SALE', 'ocr'),
                     ('50', 'ocr'), ('%', 'ocr')]
    reordered = aux_words('17_06_1', captions=captions, tags=['dog'],
                          order=('tag', 'caption'))
    assert reordered[0] == ('dog', 'tag') and len(reordered) == 6
    assert aux_words('unknown', captions=captions) == []
    assert aux_words(None, captions=captions, tags=['cat']) == [('cat', 'tag')]
    with pytest.raises(ValueError, match='order'):
        aux_words('x', order=('caption', 'vinvl'))
    with pytest.raises(ValueError, match='order'):
        aux_words('x', order=('tag', 'tag'))


def test_caption_generator_needs_local_model(tmp_path):
    with pytest.raises(ValueError, match='--caption-model'):
        CaptionGenerator(None)
    with pytest.raises(FileNotFoundError, match='--caption-model'):
        CaptionGenerator(tmp_path / 'blip2')


def test_caption_generator_tiny_local_model(tmp_path):
    """A random 1-layer ViT -> BERT captioner saved locally: the generation
    path runs end to end without any download."""
    if not VOCAB.is_file():
        pytest.skip(f'{VOCAB} not found')
    import torch
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        TrOCRProcessor,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    tokenizer = BertTokenizerFast(vocab_file=str(VOCAB))
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(
        ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64, image_size=32, patch_size=16),
        BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32,
                   num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=64, is_decoder=True,
                   add_cross_attention=True))
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(config)
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id = tokenizer.cls_token_id
        cfg.pad_token_id = tokenizer.pad_token_id
        cfg.eos_token_id = tokenizer.sep_token_id
    model.save_pretrained(tmp_path)
    processor = TrOCRProcessor(
        image_processor=ViTImageProcessor(size={'height': 32, 'width': 32}),
        tokenizer=tokenizer)
    processor.save_pretrained(tmp_path)

    captions = CaptionGenerator(tmp_path, max_new_tokens=4)(
        [Image.new('RGB', (40, 30)), Image.new('RGB', (20, 50), 'red')])
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)


# -- property-based: any caption file reads, or fails on a named line --------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from graphmner.data.conll import ConllFormatError  # noqa: E402

PROPERTIES = settings(max_examples=100, deadline=2000)
caption_ids = st.from_regex(r'[0-9A-Za-z_]{1,10}', fullmatch=True)
captions_text = st.text(st.characters(exclude_characters='\n', exclude_categories=('Cs', )), max_size=12)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp('caption-properties')


@PROPERTIES
@given(captions=st.dictionaries(caption_ids, captions_text, max_size=5),
       extension=st.sampled_from(['.jpg', '.png', '']), space=st.sampled_from(['', ' ', '\t ']),
       newline=st.sampled_from(['\n', '\r\n']), bom=st.booleans(), blank_lines=st.booleans())
def test_any_caption_file_written_in_the_format_reads_back(folder, captions, extension, space, newline,
                                                           bom, blank_lines):
    lines = [f'{image_id}{extension}{space}:{caption}' for image_id, caption in captions.items()]
    text = (newline * 2 if blank_lines else newline).join(lines)
    path = folder / 'written.txt'
    path.write_bytes(('\ufeff' if bom else '').encode() + text.encode('utf-8'))
    assert read_captions(path) == {image_id: caption.strip() for image_id, caption in captions.items()}


@PROPERTIES
@given(data=st.one_of(st.binary(max_size=48), st.lists(st.one_of(
    st.builds(lambda i, c: f'{i}.jpg :{c}'.encode(), caption_ids, captions_text),
    st.builds(lambda i: f'{i}.jpg :another caption'.encode(), caption_ids),  # a second caption of an id
    st.text(max_size=10).map(str.encode), st.just(b''), st.just(b'1.jpg :caf\xc3')),  # not UTF-8
    max_size=6).map(b'\n'.join)))
def test_any_bytes_read_as_captions_or_name_their_line(folder, data):
    path = folder / 'any.txt'
    path.write_bytes(data)
    try:
        captions = read_captions(path)
    except ConllFormatError as error:
        assert str(error).startswith(f'{path}:')
        assert_names_first_faulty_line(read_captions, folder, data, error)
        return
    assert all(isinstance(k, str) and isinstance(v, str) and v == v.strip() for k, v in captions.items())
