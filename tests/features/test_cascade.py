import importlib.metadata
import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from graphmner.features.cascade import (
    CASCADE_LABELS,
    HOG_PEOPLE,
    CascadeConfig,
    CascadeDetections,
    CascadeDetector,
    box_iou,
)
from graphmner.features.detector import COCO_CLASSES

# The astronaut's face, (x, y, w, h) as the issue states it, in xyxy.
FACE = np.array([[177, 66, 177 + 95, 66 + 95]], dtype=np.float64)


@pytest.fixture(scope='module')
def astronaut():
    return Image.fromarray(data.astronaut())


@pytest.fixture(scope='module')
def detector():
    return CascadeDetector()


@pytest.fixture(scope='module')
def found(detector, astronaut):
    """The default detector on the astronaut, the photographer, the cat, and two
    photos without a face or a person."""
    names = ('camera', 'chelsea', 'coffee', 'rocket')
    images = [astronaut] + [Image.fromarray(getattr(data, n)()) for n in names]
    return dict(zip(('astronaut', *names), detector.detect(images)))


def test_astronaut_face(found, astronaut):
    det = found['astronaut']
    assert isinstance(det, CascadeDetections)
    # The frontal and the profile cascade both box the face (IoU 0.40): NMS keeps the frontal one.
    assert det.names == ['person'] and det.sources == ['frontalface_default']
    assert box_iou(det.pixel_boxes.double().numpy(), FACE).item() > 0.5
    width, height = astronaut.size
    assert torch.allclose(det.boxes * torch.tensor([width, height, width, height]), det.pixel_boxes)
    assert det.classes.tolist() == [COCO_CLASSES.index('person')]


def test_photographer_in_profile(found):
    det = found['camera']  # a grayscale photo
    assert det.names == ['person'] and det.sources == ['profileface']
    # His head, looking right into the camera: (150..265, 65..200) by eye.
    assert box_iou(det.pixel_boxes.double().numpy(), np.array([[150.0, 65.0, 265.0, 200.0]])).item() > 0.5


def test_chelsea_is_a_cat(found):
    det = found['chelsea']
    # The cat's face overflows the frame; the extended cat-face cascade boxes its muzzle.
    assert det.names == ['cat'] and det.sources == ['frontalcatface_extended']
    assert det.classes.tolist() == [COCO_CLASSES.index('cat')]
    x0, y0, x1, y1 = det.pixel_boxes[0].tolist()
    assert 150 < (x0 + x1) / 2 < 300 and 150 < (y0 + y1) / 2 < 300


def test_photos_without_faces_or_people(found):
    # Measured: the default cascades find nothing on the coffee cup or the rocket.
    assert len(found['coffee']) == 0 and len(found['rocket']) == 0
    assert found['coffee'].boxes.shape == (0, 4) and found['coffee'].pixel_boxes.shape == (0, 4)


def test_score_is_sigmoid_of_last_stage_margin(astronaut):
    """The score against OpenCV called directly, with the last stage's threshold
    of haarcascade_frontalface_default.xml."""
    config = CascadeConfig(cascades=('frontalface_default',))
    det = CascadeDetector(config).detect([astronaut])[0]
    classifier = cv2.CascadeClassifier(cv2.data.haarcascades + 'haarcascade_frontalface_default.xml')
    gray = cv2.cvtColor(np.asarray(astronaut), cv2.COLOR_RGB2GRAY)
    rects, _, weights = classifier.detectMultiScale3(gray, scaleFactor=1.1, minNeighbors=3,
                                                     minSize=(40, 40), outputRejectLevels=True)
    assert len(rects) == 1
    margin = float(np.ravel(weights)[0]) - (-2.992827892303467)
    assert det.scores.tolist() == pytest.approx([1 / (1 + math.exp(-margin))])
    x, y, w, h = rects[0]
    assert det.pixel_boxes.tolist() == [[x, y, x + w, y + h]]


def test_nms_top_k_and_threshold(astronaut):
    both = CascadeDetector(CascadeConfig(cascades=('frontalface_default', 'profileface'), iou=0.5))
    det = both.detect([astronaut])[0]
    assert det.sources == ['frontalface_default', 'profileface']
    assert (det.scores[:-1] >= det.scores[1:]).all()
    assert box_iou(det.pixel_boxes[:1].double().numpy(), det.pixel_boxes[1:].double().numpy()).item() \
        == pytest.approx(0.398, abs=0.01)
    config = CascadeConfig(cascades=('frontalface_default', 'profileface'), iou=0.5, top_k=1)
    assert CascadeDetector(config).detect([astronaut])[0].sources == ['frontalface_default']
    # Between the two scores (0.87 and 1.0): only the frontal face passes.
    config = CascadeConfig(cascades=('frontalface_default', 'profileface'), iou=0.5, score_threshold=0.95)
    assert CascadeDetector(config).detect([astronaut])[0].sources == ['frontalface_default']
    config = CascadeConfig(cascades=('frontalface_default',), top_k=0)
    assert len(CascadeDetector(config).detect([astronaut])[0]) == 0


def test_large_image_is_detected_downscaled_and_boxed_in_its_pixels(astronaut):
    config = CascadeConfig(cascades=('frontalface_default',))
    big = astronaut.resize((1024, 1024), Image.BICUBIC)
    det = CascadeDetector(config).detect([big, astronaut.convert('L')])
    # At 640 pixels the cascade finds a second, weaker 'face': the best is the astronaut's.
    assert det[0].names[0] == 'person'
    assert box_iou(det[0].pixel_boxes[:1].double().numpy(), FACE * 2).item() > 0.5
    assert box_iou(det[1].pixel_boxes.double().numpy(), FACE).item() > 0.5  # grayscale input


def test_hog_people_score(astronaut):
    det = CascadeDetector(CascadeConfig(cascades=(), hog_people=True)).detect([astronaut])[0]
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    rects, weights = hog.detectMultiScale(np.asarray(astronaut), winStride=(8, 8), padding=(8, 8), scale=1.05)
    assert det.sources == [HOG_PEOPLE] * len(rects) and det.names == ['person'] * len(rects)
    expected = sorted((1 / (1 + math.exp(-float(w))) for w in np.ravel(weights)), reverse=True)
    assert det.scores.tolist() == pytest.approx(expected[:4])


def test_deterministic(found, astronaut):
    again = CascadeDetector().detect([astronaut])[0]
    first = found['astronaut']
    assert torch.equal(again.pixel_boxes, first.pixel_boxes) and torch.equal(again.scores, first.scores)
    assert again.names == first.names and again.sources == first.sources


def test_missing_cascade_file_names_the_option(tmp_path, astronaut):
    # construction reads nothing
    detector = CascadeDetector(CascadeConfig(cascades=('frontalcatface',), data_dir=tmp_path))
    option = r"CascadeConfig\.data_dir \(data\.detector_weights\)"
    for use in (detector.fingerprint, lambda: detector.detect([astronaut])):
        with pytest.raises(FileNotFoundError, match=option) as info:
            use()
        assert 'haarcascade_frontalcatface.xml' in str(info.value) and '\n' not in str(info.value)
    (tmp_path / 'haarcascade_frontalcatface.xml').write_text('<html>not a cascade</html>')
    with pytest.raises(ValueError, match="could not load 'frontalcatface'"):
        detector.detect([astronaut])


@pytest.mark.parametrize('kwargs, match', [
    ({'cascades': ('eye',)}, "unknown cascade"),
    ({'cascades': ('profileface', 'profileface')}, "twice"),
    ({'cascades': ()}, "nothing would be detected"),
    ({'scale_factor': 1.0}, "scale_factor must be above 1"),
    ({'min_size': 1.0}, "min_size"),
    ({'top_k': -1}, "top_k"),
    ({'iou': 0.0}, "iou"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CascadeConfig(**kwargs)


def test_fingerprint():
    config = CascadeConfig()
    fingerprint = config.fingerprint()
    assert fingerprint == CascadeConfig().fingerprint()
    assert set(fingerprint['cascades']) == set(config.cascades)
    assert all(v.startswith('sha256:') for v in fingerprint['cascades'].values())
    assert fingerprint['opencv'] == cv2.__version__ and 'data_dir' not in fingerprint
    assert CascadeConfig(min_neighbors=5).fingerprint() != fingerprint


def test_every_label_is_a_coco_class():
    assert set(CASCADE_LABELS.values()) <= set(COCO_CLASSES)


def test_one_opencv_distribution_with_the_cascades():
    """opencv-python and opencv-python-headless both install the cv2 package:
    with both, whichever was installed last wins file by file."""
    assert importlib.metadata.packages_distributions()['cv2'] == ['opencv-python']
    assert cv2.__version__.startswith('4.')
