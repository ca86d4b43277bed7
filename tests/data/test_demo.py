"""Tests of the demo dataset and of finding a tweet's photo."""
import warnings

import pytest

from graphmner.data.conll import ConllLayout, read_conll, write_conll
from graphmner.data.demo import DEMO_DIR, demo_image_root, demo_split_path
from graphmner.data.labels import ENTITY_TYPES
from graphmner.data.paths import image_path

SPLIT_SIZES = {'train': 24, 'dev': 8, 'test': 8}


def read_clean(split):
    """Reads a demo split, failing on any warning (the demo is clean IOB2)."""
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        return read_conll(demo_split_path(split))


@pytest.mark.parametrize('split', list(SPLIT_SIZES))
def test_demo_splits_parse_and_round_trip(tmp_path, split):
    tweets = read_clean(split)
    assert len(tweets) == SPLIT_SIZES[split]
    assert tweets.layout == ConllLayout()
    assert all(word.isascii() for tweet in tweets for word in tweet.words)
    write_conll(tweets, tmp_path / 'copy.txt')
    assert (tmp_path / 'copy.txt').read_bytes() == demo_split_path(split).read_bytes()


def test_demo_split_paths():
    assert demo_split_path('dev') == DEMO_DIR / 'valid.txt'
    assert demo_split_path('train').is_file()
    with pytest.raises(ValueError, match="Unknown split 'valid'"):
        demo_split_path('valid')


def test_every_entity_type_occurs_in_demo_train():
    types = {label[2:] for tweet in read_clean('train') for label in tweet.labels if label != 'O'}
    assert types == set(ENTITY_TYPES)


def test_every_demo_image_exists_and_opens():
    pytest.importorskip('skimage', reason="the demo's photos ship with scikit-image")
    from PIL import Image

    root = demo_image_root()
    image_ids = {tweet.image_id for split in SPLIT_SIZES for tweet in read_clean(split)}
    assert len(image_ids) >= 10
    for image_id in sorted(image_ids):
        path = image_path(root, image_id)
        assert path is not None, f"{image_id} is not in {root}"
        with Image.open(path) as image:
            image.load()
            assert min(image.size) >= 256, image_id
    listed = (DEMO_DIR / 'SOURCES.md').read_text(encoding='utf-8')
    assert all(f'| {image_id} |' in listed for image_id in image_ids)


def test_demo_image_root_without_scikit_image(monkeypatch):
    import importlib.util
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == 'skimage' else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, 'find_spec', find_spec)
    with pytest.raises(ModuleNotFoundError, match="pip install scikit-image"):
        demo_image_root()


def test_image_path_prefers_extensions_in_order(tmp_path):
    (tmp_path / 'a.png').write_bytes(b'')
    (tmp_path / 'a.jpg').write_bytes(b'')
    (tmp_path / 'b.webp').write_bytes(b'')
    (tmp_path / 'c.jpg').mkdir()  # a folder is not a photo
    assert image_path(tmp_path, 'a') == tmp_path / 'a.jpg'
    assert image_path(str(tmp_path), 'b') == tmp_path / 'b.webp'
    assert image_path(tmp_path, 'c') is None
    assert image_path(tmp_path / 'missing', 'a') is None
    for bad in ('', '../a', 'x\\a', '/etc/passwd', 'C:x', '..', 'a\x00b', '9' * 201):
        with pytest.raises(ValueError, match="image_id must be a file name"):
            image_path(tmp_path, bad)
