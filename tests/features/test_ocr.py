import os

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont
from skimage import data

from graphmner.features.cascade import box_iou
from graphmner.features.ocr import MODEL_FILES, OcrConfig, OcrWords, TextReader, _split_line

# DejaVu, as matplotlib ships it: no system font needed.
FONT = os.path.join(matplotlib.get_data_path(), 'fonts', 'ttf', 'DejaVuSans-Bold.ttf')
TEXT = 'Pikolo Espresso Bar'


def caption(photo: Image.Image, text: str, size: int = 40) -> tuple[Image.Image, np.ndarray]:
    """``text`` in white with a black outline at the bottom of ``photo``, as a
    meme; and each word's xyxy box as drawn."""
    image = photo.copy()
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, size)
    x = (image.width - draw.textlength(text, font=font)) / 2
    y = image.height - 2 * size
    draw.text((x, y), text, font=font, fill='white', stroke_width=2, stroke_fill='black')
    boxes, start = [], 0
    for word in text.split():
        start = text.index(word, start)
        left = x + draw.textlength(text[:start], font=font)
        boxes.append(draw.textbbox((left, y), word, font=font))
        start += len(word)
    return image, np.array(boxes, dtype=np.float64)


@pytest.fixture(scope='module')
def reader():
    return TextReader()


@pytest.fixture(scope='module')
def coffee_sign():
    return caption(Image.fromarray(data.coffee()), TEXT)


@pytest.fixture(scope='module')
def read(reader, coffee_sign):
    return reader.read([coffee_sign[0], Image.fromarray(data.rocket())])


def test_reads_printed_words_with_their_boxes(read, coffee_sign):
    image, drawn = coffee_sign
    words = read[0]
    assert isinstance(words, OcrWords)
    assert words.words == TEXT.split() and words.text == TEXT
    for found, truth in zip(words.pixel_boxes.double().numpy(), drawn):
        assert box_iou(found[None], truth[None]).item() > 0.5
    size = torch.tensor([image.width, image.height] * 2, dtype=torch.float32)
    assert torch.allclose(words.boxes * size, words.pixel_boxes)
    assert ((words.scores >= OcrConfig().min_confidence) & (words.scores <= 1)).all()


def test_photo_without_text_has_no_words(read):
    assert len(read[1]) == 0 and read[1].boxes.shape == (0, 4)


def test_min_confidence(read, coffee_sign):
    scores = read[0].scores.tolist()
    assert len(set(scores)) > 1
    threshold = sorted(scores)[-1]  # the most confident word alone passes
    strict = TextReader(OcrConfig(min_confidence=threshold)).read([coffee_sign[0]])[0]
    assert strict.words == [w for w, s in zip(read[0].words, scores) if s >= threshold]
    assert 0 < len(strict) < len(read[0])


def test_deterministic(read, coffee_sign):
    again = TextReader().read([coffee_sign[0]])[0]
    assert again.words == read[0].words
    assert torch.equal(again.pixel_boxes, read[0].pixel_boxes) and torch.equal(again.scores, read[0].scores)


def quad(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_split_line_at_spaces_and_gaps():
    # 'ab cd' recognised without the space before 'e': a gap of 12 > 0.5 * 20 px.
    chars = ['a', 'b', ' ', 'c', 'd', 'e']
    lefts = [0, 10, 20, 30, 40, 62]
    line = [quad(0, 0, 72, 20), 'ab cde', 0.9, [quad(x, 0, x + 10, 20) for x in lefts], chars,
            [0.9, 0.8, 0.99, 0.7, 0.95, 0.6]]
    assert _split_line(line, 0.5) == [('ab', [0, 0, 20, 20], 0.8), ('cd', [30, 0, 50, 20], 0.7),
                                      ('e', [62, 0, 72, 20], 0.6)]
    assert [w for w, _, _ in _split_line(line, 0.7)] == ['ab', 'cde']
    # Without character boxes the words share the line's box and score.
    assert _split_line([quad(0, 0, 72, 20), 'ab cde', 0.9, [], [], []], 0.5) == [
        ('ab', [0, 0, 72, 20], 0.9), ('cde', [0, 0, 72, 20], 0.9)]


def test_missing_weights_names_the_option(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"OcrConfig\.model_dir") as info:
        TextReader(OcrConfig(model_dir=tmp_path))
    assert all(name in str(info.value) for name in MODEL_FILES.values())
    assert '\n' not in str(info.value)


@pytest.mark.parametrize('kwargs, match', [
    ({'min_confidence': 1.5}, 'min_confidence'),
    ({'word_gap': 0.0}, 'word_gap'),
    ({'box_thresh': -0.1}, 'box_thresh'),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OcrConfig(**kwargs)


def test_fingerprint():
    fingerprint = OcrConfig().fingerprint()
    assert fingerprint == OcrConfig().fingerprint()
    assert set(fingerprint['models']) == set(MODEL_FILES)
    assert all(v.startswith('sha256:') for v in fingerprint['models'].values())
    assert 'model_dir' not in fingerprint and fingerprint['rapidocr'] == '1.4.4'
    assert OcrConfig(min_confidence=0.9).fingerprint() != fingerprint
