import importlib.util
import json
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save

# Not importorskip: ultralytics must be first imported by the detector,
# which configures it offline.
if importlib.util.find_spec('ultralytics') is None:
    pytest.skip('ultralytics is not installed', allow_module_level=True)

from graphmner.features.backends import vision_backend
from graphmner.features.cache import ENTRY_SUFFIX, FEATURES_VERSION, FeatureCache, read_entry, settings_key
from graphmner.features.detector import DetectorConfig, ObjectDetector
from graphmner.features.extract import FeatureExtractor
from graphmner.features.types import VISUAL_NODES, ImageFeatures
from graphmner.features.vision import VisionConfig

VISION = VisionConfig(weights=None, image_size=64)
DETECTOR = DetectorConfig(weights='yolov8n.yaml', conf=1e-4, imgsz=64)


@pytest.fixture(scope='module')
def models():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        resnet, detector = vision_backend(VISION), ObjectDetector(DETECTOR)
        assert resnet.network is not None and detector.model is not None  # loaded once for the module
        return resnet, detector


def flat(features: ImageFeatures) -> dict:
    """``{'<type>.<attribute>': value}`` of every stored value."""
    return {f'{t}.{k}': v for t, node in features.to_dict().items() for k, v in node.items()}


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp('photos')
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(48, 40), (30, 60), (50, 50)]):
        path = root / f'{i}.jpg'
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3),
                                     dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def make(models, cache_dir, **kwargs):
    return FeatureExtractor(*models, cache_dir=cache_dir, progress=False,
                            **kwargs)


def test_extract_shapes(models, photos):
    out = make(models, None).extract(photos)
    assert len(out) == 3
    for f in out:
        assert isinstance(f, ImageFeatures)
        assert f.dim == 2048
        assert f['region'].x.shape == (4, 2048) and f['scale'].x.shape == (16, 2048)
        k = f['object'].x.size(0)
        assert 0 < k <= DETECTOR.top_k
        assert f['object']['box'].shape == (k, 4)
        assert f['object']['cls'].shape == f['object']['score'].shape == (k, )
        assert len(f.names('object')) == k
        for boxes in (f['region']['box'], f['scale']['box'], f['object']['box']):
            assert boxes.min() >= 0 and boxes.max() <= 1


def test_cache_hit_second_time(models, photos, tmp_path):
    extractor = make(models, tmp_path, batch_size=2)
    backbone, detector = extractor.backbone, extractor.detector
    with mock.patch.object(backbone, 'extract', wraps=backbone.extract) as bb, \
            mock.patch.object(detector, 'detect', wraps=detector.detect) as dt:
        first = extractor.extract(photos)
        assert bb.call_count == dt.call_count == 2  # batches of 2 + 1
        assert [len(c.args[0]) for c in bb.call_args_list] == [2, 1]
        assert extractor.report.computed == 3 and extractor.report.cached == 0

        second = extractor.extract(photos)
        assert bb.call_count == dt.call_count == 2  # nothing recomputed
        assert extractor.report.cached == 3 and extractor.report.computed == 0

    for a, b in zip(first, second):
        theirs = flat(b)
        assert set(theirs) == set(flat(a))
        for name, value in flat(a).items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, theirs[name]), name
            else:
                assert value == theirs[name]

    files = sorted(p for p in tmp_path.rglob('*') if p.is_file())
    assert [p.suffix for p in files].count(ENTRY_SUFFIX) == 3
    assert not [p for p in files if p.name.endswith('.tmp')]
    # One image's tensors only, not its batch's (no shared view storage).
    biggest = max(p.stat().st_size for p in files if p.suffix == ENTRY_SUFFIX)
    assert biggest < (1 + 4 + 16 + 4) * 2048 * 4 * 1.1


def test_cache_key_changes_with_settings(models, photos, tmp_path):
    base = FeatureExtractor(VISION, DETECTOR, tmp_path).cache
    same = FeatureExtractor(VisionConfig(weights=None, image_size=64,
                                         device='cuda'), DETECTOR,
                            tmp_path).cache
    assert base.dir == same.dir
    changed = [
        FeatureExtractor(VisionConfig(weights=None, image_size=64,
                                      scale_grid=1), DETECTOR, tmp_path),
        FeatureExtractor(VisionConfig(weights=None, image_size=64, seed=1),
                         DETECTOR, tmp_path),
        FeatureExtractor(VISION, DetectorConfig(weights='yolov8n.yaml',
                                                conf=0.5, imgsz=64),
                         tmp_path),
        FeatureExtractor(VISION, DetectorConfig(weights='yolov8n.yaml',
                                                conf=1e-4, imgsz=64, top_k=2),
                         tmp_path),
    ]
    dirs = {e.cache.dir for e in changed} | {base.dir}
    assert len(dirs) == 5


def test_cache_keyed_by_file_bytes(models, photos, tmp_path):
    extractor = make(models, tmp_path / 'cache')
    extractor.extract(photos[:1])
    copy = tmp_path / 'renamed.jpg'
    copy.write_bytes(photos[0].read_bytes())
    extractor.extract([copy])
    assert extractor.report.cached == 1


def test_hostile_images_never_crash(models, photos, tmp_path):
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'empty.jpg').write_bytes(b'')
    (bad / 'page.jpg').write_text('<html>404</html>')
    (bad / 'cut.jpg').write_bytes(photos[0].read_bytes()[:300])
    Image.new('RGB', (2, 2)).save(bad / 'pixel.png')
    Image.new('RGBA', (20, 20)).save(bad / 'alpha.png')  # usable
    paths = [None, bad / 'nope.jpg', bad / 'empty.jpg', bad / 'page.jpg',
             bad / 'cut.jpg', bad / 'pixel.png', bad / 'alpha.png', photos[1],
             str(photos[1])]
    extractor = make(models, tmp_path / 'cache')
    out = extractor.extract(paths)
    assert [f is not None for f in out] == [False] * 6 + [True] * 3
    assert out[7] is out[8]  # the same bytes are computed once
    report = extractor.report
    assert report.total == 9 and report.unusable == 6
    assert report.computed == 3 and report.cached == 0
    assert report.counts == {'no_image': 1, 'missing': 1, 'empty': 1,
                             'not_an_image': 1, 'corrupt': 1, 'too_small': 1}
    assert '6 missing or unusable' in report.summary()
    assert {p.path for p in report.problems} >= {str(bad / 'cut.jpg'), None}


def _truncate(entry):
    data = entry.read_bytes()
    entry.write_bytes(data[:len(data) // 2])


def _rewrite(change):
    """A corruption that reads the stored entry, changes its ``(tensors, header)`` and writes it back."""
    def corrupt(entry):
        tensors, header = change(*read_entry(entry))
        entry.write_bytes(save({k: v.contiguous() for k, v in tensors.items()}, metadata=header))
    return corrupt


def _tensor(name, change):
    """Rewrites one stored tensor, e.g. ``region.x``."""
    return _rewrite(lambda tensors, header: ({**tensors, name: change(tensors[name])}, header))


def _header(change):
    """Rewrites the stored header (version, settings key, names)."""
    return _rewrite(lambda tensors, header: (tensors, change(header)))


def _version_2_pickle(entry):
    """The entry as version 2 wrote it, a ``torch.save`` pickle, at the new entry's path."""
    tensors, header = read_entry(entry)
    features = {}
    for name, value in tensors.items():
        node_type, key = name.split('.')
        features.setdefault(node_type, {})[key] = value
    features['object']['names'] = json.loads(header['object.names'])
    torch.save({'version': 2, 'settings': header['settings'], 'features': features}, entry)


@pytest.mark.parametrize('corrupt, problem', [
    (lambda entry: entry.write_bytes(b'not a torch file'), 'unreadable'),
    (_truncate, 'unreadable'),
    (_tensor('region.x', lambda r: r[:, :7]), 'wrong shape (region.x (4, 7), expected [N, 2048])'),
    (_header(lambda h: {**h, 'object.names': json.dumps(json.loads(h['object.names']) + ['extra'])}),
     'wrong shape (object names'),
    (_tensor('scale.level', lambda level: level[1:]), 'wrong shape (scale.level (15,), expected (16,))'),
    (_tensor('image.x', lambda x: torch.full_like(x, float('nan'))), 'not finite'),
    (_rewrite(lambda tensors, h: ({k: v for k, v in tensors.items() if not k.startswith('scale.')}, h)),
     "missing ['scale']"),
    (_header(lambda h: {**h, 'version': '2'}), 'another version'),
    (_header(lambda h: {**h, 'settings': '0' * 64}), 'another version or settings'),
    (_header(lambda h: {}), 'not a feature cache entry'),
    (_version_2_pickle, 'unreadable'),
], ids=['garbage', 'truncated', 'wrong-width', 'object-count', 'level-count', 'nan', 'missing-type',
        'wrong-version', 'wrong-settings', 'no-header', 'version-2-pickle'])
def test_corrupt_cache_entry_is_recomputed_and_counted(models, photos, tmp_path, caplog, corrupt, problem):
    extractor = make(models, tmp_path)
    [fresh] = extractor.extract(photos[:1])
    entry = next(tmp_path.rglob(f'*{ENTRY_SUFFIX}'))
    corrupt(entry)
    with caplog.at_level('WARNING', logger='graphmner.features'):
        [again] = extractor.extract(photos[:1])
    assert extractor.report.recomputed == 1 and extractor.report.computed == 1
    assert '1 corrupt cache entries recomputed' in extractor.report.summary()
    assert any(problem in r.getMessage() and str(entry) in r.getMessage() for r in caplog.records)
    assert any('1 corrupt cache entries recomputed' in r.getMessage() for r in caplog.records)
    # the recomputed features, never the corrupt ones; the entry is whole again
    # (close, not equal: a backbone's first call on a CPU may differ from later ones in the last bits)
    assert again.names('object') == fresh.names('object')
    theirs = flat(again)
    for name, value in flat(fresh).items():
        if name != 'object.names':
            torch.testing.assert_close(theirs[name], value, rtol=1e-4, atol=1e-4)
    assert isinstance(extractor.cache.get(entry.stem), ImageFeatures)
    assert extractor.extract(photos[:1]) and extractor.report.cached == 1


def test_cache_entry_is_a_safetensors_file(tmp_path):
    cache = FeatureCache(tmp_path, {'x': 1})
    digest = 'ab' * 32
    features = ImageFeatures({t: spec.empty(8) for t, spec in VISUAL_NODES.items()})
    cache.put(digest, features)
    assert digest in cache and Path(cache.path(digest)).is_file()
    assert (cache.dir / 'settings.json').is_file()
    tensors, header = read_entry(cache.path(digest))
    assert header == {'version': str(FEATURES_VERSION), 'settings': cache.key, 'object.names': '[]'}
    assert set(tensors) == {f'{t}.{k}' for t, spec in VISUAL_NODES.items() for k in ('x', *spec.attrs)}
    assert cache.get(digest).names('object') == []
    assert cache.get('cd' * 32) is None


def test_duplicates_computed_once(models, photos, tmp_path):
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    extractor = make(models, None, batch_size=1)
    paths = [photos[0], photos[1], photos[0], empty, str(photos[0]), empty]
    with mock.patch.object(extractor.backbone, 'extract',
                           wraps=extractor.backbone.extract) as bb:
        out = extractor.extract(paths)
    assert bb.call_count == 2
    assert out[0] is out[2] is out[4] and out[3] is out[5] is None
    report = extractor.report
    assert (report.cached, report.computed, report.unusable) == (0, 4, 2)
    assert report.total == report.cached + report.computed + report.unusable


def test_entries_of_the_flat_layout_are_rebuilt_not_misread(tmp_path, caplog):
    """Version 1 stored flat fields (regions, scale_levels, ...), version 2 pickles: the version is in
    the key, so a new cache never finds them, and flat fields found at a new entry's path are refused
    and recomputed."""
    cache = FeatureCache(tmp_path, {'x': 1})
    assert FEATURES_VERSION == 3 and cache.settings['features_version'] == 3
    assert {settings_key({**cache.settings, 'features_version': v}) for v in (1, 2)}.isdisjoint({cache.key})
    digest = 'ef' * 32
    path = cache.path(digest)
    path.parent.mkdir(parents=True)
    flat_entry = {'image': torch.zeros(8), 'regions': torch.zeros(4, 8), 'region_boxes': torch.zeros(4, 4),
                  'scales': torch.zeros(2, 8), 'scale_levels': torch.zeros(2, dtype=torch.long),
                  'scale_boxes': torch.zeros(2, 4), 'objects': torch.zeros(0, 8),
                  'object_boxes': torch.zeros(0, 4), 'object_classes': torch.zeros(0, dtype=torch.long),
                  'object_scores': torch.zeros(0)}
    path.write_bytes(save(flat_entry, metadata={'version': '1', 'settings': cache.key, 'object_names': '[]'}))
    assert cache.get(digest) is None and 'another version' in cache.rejected[0][1]
    path.write_bytes(save(flat_entry, metadata={'version': str(FEATURES_VERSION), 'settings': cache.key}))
    assert cache.get(digest) is None
    assert cache.rejected[1][1] == "missing ['image', 'region', 'scale', 'object']"


def test_a_backend_must_fill_every_visual_node_type(models, photos):
    extractor = make(models, None)
    extract = extractor.backbone.extract
    drop_scale = lambda images: [{t: n for t, n in f.items() if t != 'scale'} for f in extract(images)]
    with mock.patch.object(extractor.backbone, 'extract', drop_scale), \
            pytest.raises(ValueError, match=r"vision backend 'resnet50' gave the node types \['image', "
                                            r"'object', 'region'\], not \['image', 'object', 'region', "
                                            r"'scale'\]"):
        extractor.extract(photos[:1])
