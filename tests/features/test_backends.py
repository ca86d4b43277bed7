"""The visual-backend registry: the built-in backends behind the protocols, unknown
names in one line, and a new backend that is one class and one register call, from
the extractor through the graphs to the width a model is built with."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from graphmner import models
from graphmner.data.conll import Tweet
from graphmner.data.demo import DEMO_OPTIONS
from graphmner.features import backends
from graphmner.features.backends import (
    DetectorBackend,
    VisionBackend,
    detector_backend,
    detector_names,
    register_detector,
    register_vision,
    vision_backend,
    vision_names,
)
from graphmner.features.cascade import CascadeConfig, CascadeDetector
from graphmner.features.descriptors import DescriptorBackbone
from graphmner.features.detector import DetectorConfig, ObjectDetector
from graphmner.features.extract import FeatureExtractor
from graphmner.features.types import Detections, NodeFeatures, VisualWidths
from graphmner.features.vision import ResNetBackend, VisionConfig
from graphmner.graph import GraphBuilder, GraphOptions


@pytest.fixture
def registries(monkeypatch):
    """Registrations made by a test are undone after it."""
    monkeypatch.setattr(backends, '_VISION', dict(backends._VISION))
    monkeypatch.setattr(backends, '_DETECTORS', dict(backends._DETECTORS))


def test_the_built_in_backends_are_registered_and_follow_the_protocols():
    assert vision_names() == ['descriptors', 'resnet152', 'resnet50']
    assert detector_names() == ['cascade', 'yolo']
    resnet = vision_backend(VisionConfig(arch='resnet152', weights=None))
    assert isinstance(resnet, ResNetBackend) and isinstance(resnet, VisionBackend)
    assert resnet.name == 'resnet152'
    descriptors = vision_backend(VisionConfig(arch='descriptors', image_size=128))
    assert isinstance(descriptors, DescriptorBackbone) and isinstance(descriptors, VisionBackend)
    assert descriptors.config.image_size == 128
    yolo = detector_backend(DetectorConfig(weights='yolov8n.yaml'))
    assert isinstance(yolo, ObjectDetector) and isinstance(yolo, DetectorBackend)
    assert detector_backend(DetectorConfig(weights=None)) is None  # no detector
    cascade = detector_backend(DetectorConfig(arch='cascade', weights='opencv', top_k=2, conf=0.7,
                                              cascades=('profileface',), hog_people=True))
    assert isinstance(cascade, CascadeDetector) and isinstance(cascade, DetectorBackend)
    assert cascade.name == 'cascade'
    assert cascade.config == CascadeConfig(cascades=('profileface',), hog_people=True, top_k=2,
                                           score_threshold=0.7)
    # DetectorConfig's conf 0.25 keeps every detection, as CascadeConfig's 0.5 does (scores are >= 0.5)
    assert detector_backend(DetectorConfig(arch='cascade', weights='opencv')).config == CascadeConfig(
        score_threshold=0.25)


def test_unknown_names_are_one_line_listing_the_known():
    with pytest.raises(ValueError, match=r"^unknown vision backend 'clip' \(VisionConfig.arch, "
                                         r"data.vision_arch\); known: descriptors, resnet152, resnet50$"):
        vision_backend(VisionConfig(arch='clip'))
    with pytest.raises(ValueError, match=r"^unknown detector backend 'detr' .*; known: cascade, yolo$"):
        detector_backend(DetectorConfig(arch='detr'))


def test_the_cascades_fingerprint_keys_the_feature_cache(tmp_path):
    """The cascade files' digests and settings are in the key: another set of cascades, or a
    folder whose cascade file differs, is another cache folder; a copy of the same files is not."""
    import cv2

    def key(**detector):
        config = DetectorConfig(arch='cascade', **{'weights': 'opencv', **detector})
        return FeatureExtractor(VisionConfig(arch='descriptors'), config, cache_dir=tmp_path).cache.key

    default = key()
    assert key(cascades=('profileface',)) != default and key(top_k=2) != default
    folder = tmp_path / 'cascades'
    folder.mkdir()
    for name in CascadeConfig().cascades:
        source = Path(cv2.data.haarcascades) / f'haarcascade_{name}.xml'
        (folder / source.name).write_bytes(source.read_bytes())
    assert key(weights=str(folder)) == default
    with open(folder / 'haarcascade_profileface.xml', 'a') as f:
        f.write('<!-- retrained -->\n')
    assert key(weights=str(folder)) != default


def test_cascade_weights_that_are_not_a_folder_name_the_option(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^DetectorConfig.weights \(data.detector_weights\) is "
                                                r"'yolov8n.pt', .*set it to 'opencv'") as info:
        detector_backend(DetectorConfig(arch='cascade', weights='yolov8n.pt'))
    assert '\n' not in str(info.value)
    with pytest.raises(FileNotFoundError, match=r"data.cascades\) names 'frontalface_default'.*"
                                                r"data.detector_weights"):
        detector_backend(DetectorConfig(arch='cascade', weights=str(tmp_path))).fingerprint()


def test_a_name_is_registered_once(registries):
    with pytest.raises(ValueError, match="vision backend name 'resnet50' is taken"):
        register_vision('resnet50', lambda config: None)
    register_detector('yolo', ObjectDetector)  # the same factory again: nothing changes


class MeanColour:
    """A whole new vision backend: the photo's mean RGB for every node, on a 2 x 2 grid."""

    name = 'mean-colour'

    def __init__(self, config: VisionConfig):
        self.config = config

    @property
    def widths(self) -> VisualWidths:
        return VisualWidths.uniform(3)

    def fingerprint(self) -> dict:
        return {'arch': self.name}

    def describe(self) -> str:
        return 'mean colour (3-d)'

    def encode_crops(self, crops):
        return torch.stack([self._mean(c) for c in crops]) if crops else torch.zeros(0, 3)

    def extract(self, images):
        boxes = torch.tensor([[0, 0, .5, .5], [.5, 0, 1, .5], [0, .5, .5, 1], [.5, .5, 1, 1]])
        out = []
        for image in images:
            x = self._mean(image).view(1, 3)
            out.append({'image': NodeFeatures(x),
                        'region': NodeFeatures(x.repeat(4, 1), {'box': boxes}),
                        'scale': NodeFeatures(x.repeat(4, 1), {'level': torch.arange(4), 'box': boxes})})
        return out

    @staticmethod
    def _mean(image):
        return torch.from_numpy(np.asarray(image.convert('RGB'), dtype=np.float32)).mean((0, 1)) / 255


class CentreBox:
    """A whole new detector backend: one 'thing' in the middle of every photo."""

    name = 'centre'

    def __init__(self, config: DetectorConfig):
        self.config = config

    def fingerprint(self) -> dict:
        return {'arch': self.name, 'top_k': self.config.top_k}

    def describe(self) -> str:
        return 'centre box'

    def detect(self, images):
        box = torch.tensor([[.25, .25, .75, .75]])
        return [Detections(box, torch.tensor([0]), torch.tensor([.9]), ['thing']) for _ in images]


def test_a_new_backend_is_one_class_and_one_register_call(registries, tmp_path, tweet):
    register_vision('mean-colour', MeanColour)
    register_detector('centre', CentreBox)
    image = Image.new('RGB', (40, 30), (255, 0, 0))
    image.paste((0, 0, 255), (10, 8, 30, 22))  # blue in the middle: the detected box is bluer than the photo
    image.save(tmp_path / 'photo.png')

    extractor = FeatureExtractor(VisionConfig(arch='mean-colour'), DetectorConfig(arch='centre', weights='-'),
                                 cache_dir=tmp_path / 'cache', progress=False)
    assert extractor.settings == {'vision': {'arch': 'mean-colour'},
                                  'detector': {'arch': 'centre', 'top_k': 4}}
    assert extractor.describe() == 'mean colour (3-d); centre box'
    [f] = extractor.extract([tmp_path / 'photo.png'])
    assert f.names('object') == ['thing'] and f['object'].x[0, 2] > f['image'].x[0, 2]

    options = GraphOptions(vision_arch='mean-colour', detector_arch='centre', detector_weights='-',
                           spacy_model=DEMO_OPTIONS['spacy_model'])
    graphs, report = GraphBuilder(options, image_root=tmp_path, feature_cache=tmp_path / 'cache',
                                  progress=False)([Tweet('photo', tweet.words, tweet.labels),
                                                   Tweet('gone', tweet.words, tweet.labels)])
    assert report['visual_backend'] == 'mean colour (3-d); centre box'
    assert graphs[0]['region'].x.shape == (4, 3) and graphs[0].object_names == ['thing']
    assert graphs[1]['image'].missing.item() and graphs[1]['object'].x.shape == (0, 3)
    maf = models.model_class('maf').config_class()
    assert maf.fit_visual_widths(GraphBuilder(options).widths()).visual_dim == 3
