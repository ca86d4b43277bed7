import warnings

import pytest
import torch
import torchvision
from PIL import Image
from torchvision.transforms import v2 as T

from graphmner.features.backends import vision_backend
from graphmner.features.types import NodeFeatures, VisualWidths
from graphmner.features.vision import STAGE_WIDTHS, ResNetBackend, VisionBackbone, VisionConfig


@pytest.fixture(scope='module')
def backbone():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        return VisionBackbone(VisionConfig(weights=None))


@pytest.fixture(scope='module')
def small():
    """64 px input: 2x2 regions; for tests that need no 224 px geometry."""
    with pytest.warns(UserWarning, match='RANDOM'):
        return VisionBackbone(VisionConfig(weights=None, image_size=64))


@pytest.fixture(scope='module')
def photos():
    gen = torch.Generator().manual_seed(0)
    def photo(w, h):
        return T.functional.to_pil_image(
            torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen))
    return [photo(96, 64), photo(40, 120)]  # landscape, portrait


@pytest.fixture(scope='module')
def features(backbone, photos):
    return backbone.extract(photos)


def test_shapes(features):
    assert len(features) == 2
    for f in features:
        assert set(f) == {'image', 'region', 'scale'} and all(isinstance(n, NodeFeatures) for n in f.values())
        assert f['image'].x.shape == (1, 2048)
        assert f['region'].x.shape == (49, 2048)
        assert f['region']['box'].shape == (49, 4)
        assert f['scale'].x.shape == (16, 2048)
        assert f['scale']['box'].shape == (16, 4)
        assert f['scale']['level'].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
        assert f['image'].x[0].dtype == torch.float32 and not f['image'].x[0].is_inference()


def test_scales_are_zero_padded(features):
    scales, levels = features[0]['scale'].x, features[0]['scale']['level']
    widths = {0: 256, 1: 512, 2: 1024, 3: 2048}
    for level, width in widths.items():
        rows = scales[levels == level]
        assert rows[:, width:].abs().sum() == 0
        assert rows[:, :width].abs().sum() > 0


def test_global_and_pyramid_pooling(features):
    f = features[0]
    torch.testing.assert_close(f['image'].x[0], f['region'].x.mean(0))
    # Adaptive pooling 7 -> 2 uses overlapping 4x4 windows: the first cell
    # of the last level is the mean of regions rows 0-3 x cols 0-3, and its
    # box is the union of theirs.
    window = [r * 7 + c for r in range(4) for c in range(4)]
    torch.testing.assert_close(f['scale'].x[12], f['region'].x[window].mean(0))
    union = torch.cat([f['region']['box'][window, :2].min(0).values,
                       f['region']['box'][window, 2:].max(0).values])
    torch.testing.assert_close(f['scale']['box'][12], union)


def test_boxes_in_original_coordinates(features):
    for f in features:
        for boxes in (f['region']['box'], f['scale']['box']):
            assert boxes.min() >= 0 and boxes.max() <= 1
            assert (boxes[:, 2] > boxes[:, 0]).all()
            assert (boxes[:, 3] > boxes[:, 1]).all()
    # Landscape 96x64 -> Resize(256) 384x256 -> CenterCrop(224) keeps
    # x in [80, 304] / 384 and y in [16, 240] / 256.
    land = features[0]['region']['box']
    assert land[:, 0].min() == pytest.approx(80 / 384)
    assert land[:, 2].max() == pytest.approx(304 / 384)
    assert land[:, 1].min() == pytest.approx(16 / 256)
    assert land[:, 3].max() == pytest.approx(240 / 256)
    # Row-major: the first row runs left to right at the same top.
    assert (land[1:7, 0] > land[0:6, 0]).all()
    assert (land[0:7, 1] == land[0, 1]).all()
    assert (land[7, 1] > land[0, 1])
    # Portrait 40x120 -> 256x768: x in [16, 240] / 256, y in [272, 496] / 768.
    portrait = features[1]['region']['box']
    assert portrait[:, 0].min() == pytest.approx(16 / 256)
    assert portrait[:, 1].min() == pytest.approx(272 / 768)
    assert portrait[:, 3].max() == pytest.approx(496 / 768)


def test_preprocess_matches_torchvision(backbone, photos):
    pixels, windows = backbone.preprocess(photos)
    reference = T.Compose([
        T.Resize(256), T.CenterCrop(224), T.ToImage(),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    for img, px in zip(photos, pixels):
        torch.testing.assert_close(px, reference(img))
    assert windows.shape == (2, 4)


def test_frozen(backbone, features):
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training
    assert not features[0]['region'].x.requires_grad


def test_batch_independent(small, photos):
    both = small.extract(photos)
    alone = small.extract([photos[1]])[0]
    torch.testing.assert_close(alone['region'].x, both[1]['region'].x, atol=1e-4,
                               rtol=1e-4)


def test_features_own_their_storage(features):
    f = features[0]
    assert f['image'].x[0].untyped_storage().nbytes() == 2048 * 4
    assert f['region'].x.untyped_storage().nbytes() == 49 * 2048 * 4


def test_encode_crops(small, photos):
    crops = [photos[0].crop((0, 0, 30, 20)), photos[1].crop((5, 5, 6, 40))]
    out = small.encode_crops(crops)
    assert out.shape == (2, 2048) and out.dtype == torch.float32
    # A crop's vector is the global vector of the crop as an image.
    torch.testing.assert_close(out[0], small.extract(crops[:1])[0]['image'].x[0],
                               atol=1e-4, rtol=1e-4)
    assert small.encode_crops([]).shape == (0, 2048)


def test_other_sizes(small):
    f = small.extract([Image.new('RGB', (50, 50))])[0]
    assert f['region'].x.shape == (4, 2048) and f['scale'].x.shape == (16, 2048)
    with pytest.warns(UserWarning, match='RANDOM'):
        coarse = VisionBackbone(VisionConfig(weights=None, image_size=64,
                                             scale_grid=1))
    assert coarse.extract([Image.new('RGB', (50, 50))])[0]['scale'].x.shape == (
        4, 2048)


def test_random_weights_are_seeded(backbone, small):
    assert torch.equal(small.stages[0][0].conv1.weight,
                       backbone.stages[0][0].conv1.weight)


def test_imagenet_missing_names_option(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        VisionBackbone(VisionConfig(weights='imagenet'))
    assert '--vision-weights' in str(e.value)
    assert 'resnet50-0676ba61.pth' in str(e.value)


def test_local_path_missing_names_option(tmp_path):
    with pytest.raises(FileNotFoundError, match='--vision-weights'):
        VisionBackbone(VisionConfig(weights=tmp_path / 'resnet.pth'))


def test_local_state_dict(tmp_path, backbone):
    # A backbone-only state dict (no fc) is accepted.
    state = {k: v for k, v in torchvision.models.resnet50().state_dict().items()
             if not k.startswith('fc.')}
    path = tmp_path / 'resnet50.pth'
    torch.save(state, path)
    loaded = VisionBackbone(VisionConfig(weights=path, image_size=64))
    assert torch.equal(loaded.stem[0].weight, state['conv1.weight'])
    assert ResNetBackend(loaded.config).fingerprint()['weights'].startswith('sha256:')

    torch.save({'conv1.weight': state['conv1.weight']}, path)
    with pytest.raises(RuntimeError, match='missing keys'):
        VisionBackbone(VisionConfig(weights=path))


def test_config_validation_and_fingerprint():
    known = r'known: descriptors, resnet152, resnet50$'
    with pytest.raises(ValueError, match=rf"unknown vision backend 'vgg16' \(VisionConfig.arch, .*{known}"):
        vision_backend(VisionConfig(arch='vgg16'))
    with pytest.raises(ValueError, match='scale_grid'):
        vision_backend(VisionConfig(image_size=64, scale_grid=3))
    with pytest.raises(ValueError, match='resize_size'):
        VisionConfig(resize_size=200)
    fingerprint = lambda **settings: vision_backend(VisionConfig(**settings)).fingerprint()
    base = fingerprint(weights=None)
    assert base == fingerprint(weights=None, device='cuda')
    assert base == fingerprint(weights=None, resize_size=256)
    assert base != fingerprint(weights=None, scale_grid=1)
    assert base != fingerprint(weights=None, seed=1)
    assert fingerprint()['weights'] == 'torchvision:resnet50-0676ba61.pth'


def test_widths_are_known_before_loading_and_match_the_network(backbone):
    for arch in ('resnet50', 'resnet152'):
        resnet = vision_backend(VisionConfig(arch=arch, weights='imagenet'))  # no weight file needed
        assert resnet.widths == VisualWidths({t: 2048 for t in ('image', 'region', 'scale', 'object')},
                                             (256, 512, 1024, 2048))
        assert resnet.describe() == f'{arch} (imagenet)'
    assert backbone.stage_widths == STAGE_WIDTHS['resnet50']
    assert vision_backend(VisionConfig(weights=None)).describe() == 'resnet50 (RANDOM weights)'


def test_native_stage_maps_pack_every_cell(small, photos):
    """scale_grid=0: each stage's whole map, channels last, packed into rows of 2048 (a row of stage l
    holds 2048 / C_l adjacent cells of one map row, no padding); the rows unpack to the very maps the
    network computes, and a row's box is its strip of cells."""
    from graphmner.features.grid import pack_cells, unpack_cells

    with pytest.warns(UserWarning, match='RANDOM'):
        native = VisionBackbone(VisionConfig(weights=None, image_size=64, scale_grid=0))
    native.load_state_dict(small.state_dict())
    f = native.extract(photos[:1])[0]['scale']
    maps = small(small.preprocess(photos[:1])[0])                  # 16, 8, 4, 2 cells a side at 64 px
    per_row = [2048 // c for c in (256, 512, 1024, 2048)]         # cells packed in a row of 2048
    assert f['level'].bincount().tolist() == [side * side // k for side, k in zip((16, 8, 4, 2), per_row)]
    for level, fmap in enumerate(maps):
        rows = f.x[f['level'] == level]
        torch.testing.assert_close(unpack_cells(rows[None], fmap.shape[1]), fmap)
        cell = fmap[0, :, 0, 2048 // fmap.shape[1] - 1]            # the last cell of the first row
        torch.testing.assert_close(rows[0, -fmap.shape[1]:], cell)
    # Level 0 at 64 px: 16 x 16 cells, 8 per row: the first row of nodes is the top-left half-row strip
    # of the crop window, the second the top-right one.
    x0, y0, x1, y1 = small.preprocess(photos[:1])[1][0].tolist()
    width, height = x1 - x0, y1 - y0
    strips = f['box'][f['level'] == 0]
    torch.testing.assert_close(strips[0], torch.tensor([x0, y0, x0 + width / 2, y0 + height / 16]))
    torch.testing.assert_close(strips[1], torch.tensor([x0 + width / 2, y0, x1, y0 + height / 16]))
    with pytest.raises(ValueError, match='does not pack into rows of 2048'):
        pack_cells(torch.zeros(1, 512, 3, 3), 2048)
