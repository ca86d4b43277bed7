"""The demo dataset: 40 hand-written tweets over scikit-image's sample photos.

The text lives in this package (``graphmner/data/demo/{train,valid,test}.txt``,
in the Twitter ``IMGID:`` CoNLL format); each ``IMGID:`` is the file stem of a
public-domain or CC0 photo that ships inside the scikit-image wheel (see
``graphmner/data/demo/SOURCES.md``), so the demo runs offline with real
images. Some photos match their tweet, some do not, as on Twitter.

Example:
    >>> from graphmner.data.conll import read_conll
    >>> from graphmner.data.paths import image_path
    >>> tweets = read_conll(demo_split_path('train'))
    >>> image_path(demo_image_root(), tweets[0].image_id)
    PosixPath('.../skimage/data/astronaut.png')
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .paths import SPLIT_FILES

__all__ = ['DEMO_DIR', 'DEMO_CAPTIONS', 'DEMO_OPTIONS', 'SHARED_MODELS', 'demo_split_path',
           'demo_image_root']

#: The folder of the demo's CoNLL files, inside this package.
DEMO_DIR: Path = Path(__file__).resolve().parent / 'demo'
#: Hand-written captions of the demo photos, in the BLIP-2 caption format.
DEMO_CAPTIONS: Path = DEMO_DIR / 'captions.txt'
#: The models folder beside the checkout on the project's machines (``../shared/models`` from the
#: working directory, as the README's commands are run): the demo's spaCy model is looked for there.
SHARED_MODELS: Path = (Path('..') / 'shared' / 'models').resolve()

#: Extractor settings the demo runs with when the caller sets none. No pretrained
#: vision weights can be had offline, and a random ResNet describes every photo with
#: nearly the same vector, so the demo describes its photos with the weight-free
#: classical descriptors (:mod:`graphmner.features.descriptors`). Its detector is
#: OpenCV's pretrained Haar cascades (:mod:`graphmner.features.cascade`), which ship
#: inside the OpenCV wheel: faces and bodies become ``person`` objects, cat faces
#: ``cat`` (on the demo's photos: the astronaut's face, the photographer's profile,
#: the cat, and a few false faces), so UMGF grounds noun phrases and ITA reads object
#: tags. Every graph records this in ``g.visual_backend``. With ImageNet ResNet and
#: YOLO weights at hand, pass ``vision_arch='resnet50', vision_weights='imagenet',
#: detector_arch='yolo', detector_weights='yolov8n.pt'``.
DEMO_OPTIONS: dict = {
    'vision_arch': 'descriptors',
    'vision_weights': None,
    'detector_arch': 'cascade',
    'detector_weights': 'opencv',
    'spacy_model': str(SHARED_MODELS / 'en_core_web_sm-3.8.0'),
}


def demo_split_path(split: str) -> Path:
    """The CoNLL file of one demo split.

    Args:
        split: ``'train'``, ``'dev'`` or ``'test'``.

    Returns:
        The file's path inside the installed package.

    Raises:
        ValueError: If ``split`` is not one of the three.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"Unknown split '{split}'; use one of {', '.join(SPLIT_FILES)}")
    return DEMO_DIR / SPLIT_FILES[split]


def demo_image_root() -> Path:
    """The folder of scikit-image's bundled sample photos, the demo's images.

    Found without importing scikit-image (which would import NumPy, SciPy and
    more just to locate a folder).

    Returns:
        The installed ``skimage/data`` folder.

    Raises:
        ModuleNotFoundError: If scikit-image is not installed.
        FileNotFoundError: If the installed scikit-image has no ``data`` folder.
    """
    spec = importlib.util.find_spec('skimage')
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The demo dataset's images are scikit-image's sample photos; install "
            "it with `pip install scikit-image`", name='skimage')
    root = Path(next(iter(spec.submodule_search_locations))) / 'data'
    if not root.is_dir():
        raise FileNotFoundError(
            f"scikit-image is installed but has no sample-photo folder at {root}")
    return root
