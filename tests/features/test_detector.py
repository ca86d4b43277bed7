import importlib.util
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

# Not importorskip: ultralytics must be first imported by the detector,
# which configures it offline.
if importlib.util.find_spec('ultralytics') is None:
    pytest.skip('ultralytics is not installed', allow_module_level=True)

from graphmner.features.detector import (COCO_CLASSES, Detections,  # noqa
                                         DetectorConfig, ObjectDetector)

# Random weights score everything near 0.0002: a tiny threshold yields boxes.
CONFIG = DetectorConfig(weights='yolov8n.yaml', conf=1e-4, imgsz=64)


@pytest.fixture(scope='module')
def detector():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        detector = ObjectDetector(CONFIG)
        assert detector.model is not None  # loads it, warning of the random weights
        return detector


@pytest.fixture(scope='module')
def images():
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (90, 30, 3), dtype=np.uint8)),
    ]


def test_offline_environment(detector):
    assert os.environ['YOLO_OFFLINE'] == 'true'
    assert os.environ['YOLO_AUTOINSTALL'] == 'false'
    assert os.access(os.environ['YOLO_CONFIG_DIR'], os.W_OK)
    from ultralytics import settings
    assert settings['sync'] is False


def test_detect(detector, images):
    out = detector.detect(images)
    assert len(out) == 2
    for det in out:
        assert isinstance(det, Detections)
        assert 0 < len(det) <= CONFIG.top_k
        assert det.boxes.shape == (len(det), 4)
        assert det.boxes.min() >= 0 and det.boxes.max() <= 1
        assert det.classes.dtype == torch.long
        assert (det.scores[:-1] >= det.scores[1:]).all()
        assert det.names == [COCO_CLASSES[c] for c in det.classes.tolist()]
        assert not det.boxes.is_inference()


def test_crop(detector, images):
    det = detector.detect(images[:1])[0]
    crops = det.crop(images[0])
    assert len(crops) == len(det)
    for crop in crops:
        assert 0 < crop.size[0] <= 64 and 0 < crop.size[1] <= 48
    degenerate = Detections(torch.tensor([[1.0, 1.0, 1.0, 1.0]]),
                            torch.tensor([0]), torch.tensor([0.5]), ['x'])
    assert degenerate.crop(images[0])[0].size == (1, 1)


def test_edge_cases(detector, images):
    assert detector.detect([]) == []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        none = ObjectDetector(DetectorConfig(weights='yolov8n.yaml', top_k=0))
    assert [len(d) for d in none.detect(images)] == [0, 0]


def test_random_weights_warn():
    detector = ObjectDetector(DetectorConfig(weights='yolov8n.yaml'))  # nothing loaded yet
    with pytest.warns(UserWarning, match='RANDOM'):
        assert detector.model is not None


def test_missing_weights_name_the_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so 'yolov8n.pt' resolves to nothing
    detector = ObjectDetector(DetectorConfig())  # reads no file: cheap to build, e.g. to describe
    assert detector.describe() == 'yolov8n.pt'
    with pytest.raises(FileNotFoundError) as e:
        detector.fingerprint()
    message = str(e.value)
    assert '--detector-weights' in message
    assert 'DetectorConfig.weights' in message
    assert str(tmp_path / 'yolov8n.pt') in message
    with pytest.raises(FileNotFoundError, match='--detector-weights'):
        DetectorConfig().fingerprint()


def test_local_pt_file(tmp_path, detector, images):
    path = tmp_path / 'tiny.pt'
    detector.model.save(path)
    loaded = ObjectDetector(DetectorConfig(weights=path, conf=1e-4,
                                           imgsz=64))
    assert loaded.names[0] == 'person'
    a, b = detector.detect(images[:1])[0], loaded.detect(images[:1])[0]
    torch.testing.assert_close(a.scores, b.scores)
    assert DetectorConfig(weights=path).fingerprint()['weights'].startswith(
        'sha256:')


def test_config_validation_and_fingerprint():
    with pytest.raises(ValueError, match='conf'):
        DetectorConfig(conf=2.0)
    with pytest.raises(ValueError, match='top_k'):
        DetectorConfig(top_k=-1)
    base = CONFIG.fingerprint()
    assert base == DetectorConfig(weights='yolov8n.yaml', conf=1e-4, imgsz=64,
                                  device='cuda').fingerprint()
    assert base != DetectorConfig(weights='yolov8n.yaml', conf=0.5,
                                  imgsz=64).fingerprint()


def test_no_detector_is_an_option_not_a_file():
    none = DetectorConfig(weights=None)
    assert not none.enabled and none.describe() == 'no detector'
    assert none.fingerprint() == {'weights': None}  # thresholds of no detector change nothing
    assert DetectorConfig(weights=None, conf=0.5).fingerprint() == none.fingerprint()
    with pytest.raises(ValueError, match=r'DetectorConfig.weights \(--detector-weights\) is None'):
        ObjectDetector(none)
    with pytest.raises(ValueError, match='no detector'):
        none.resolve_weights()
    assert CONFIG.describe() == 'yolov8n.yaml (RANDOM weights)'
    assert DetectorConfig(weights='/x/yolov8n.pt').describe() == 'yolov8n.pt'


def test_missing_weights_file_names_the_option(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'--detector-weights.*does not exist'):
        _ = ObjectDetector(DetectorConfig(weights=tmp_path / 'yolov8n.pt')).model


def test_pil_open_is_not_patched(detector, tmp_path):
    # ultralytics' Image.open patch would try to pip install pi-heif here.
    from graphmner.data.images import load_image
    path = tmp_path / 'page.jpg'
    path.write_text('<html>404</html>')
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(path)
    assert load_image(path).problem == 'not_an_image'


def test_detecting_leaves_torch_thread_count_alone(detector, images):
    kept = torch.get_num_threads()
    torch.set_num_threads(3)  # ultralytics would set cpu_count - 1
    try:
        detector.detect(images)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(kept)
