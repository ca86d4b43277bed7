"""The weight-free descriptor backend: shapes and widths, values against hand
computations, determinism, the cache key, and that it tells photos apart."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import color
from torchvision.transforms import v2 as T

from graphmner.data.demo import demo_image_root
from graphmner.data.images import load_image
from graphmner.features.backends import vision_backend
from graphmner.features.descriptors import DescriptorBackbone, DescriptorConfig
from graphmner.features.detector import DetectorConfig
from graphmner.features.extract import FeatureExtractor
from graphmner.features.types import VisualWidths
from graphmner.features.vision import VisionBackbone, VisionConfig

# Blocks of the default 42-d descriptor.
HUE, SATURATION, VALUE = slice(0, 8), slice(8, 12), slice(12, 16)
LAB_MEAN, LAB_STD = slice(16, 19), slice(19, 22)
ORIENTATIONS, MAGNITUDE, LBP = slice(22, 31), 31, slice(32, 42)
COLOUR = slice(0, 22)


@pytest.fixture(scope='module')
def backbone():
    return DescriptorBackbone()


@pytest.fixture(scope='module')
def photos():
    root = demo_image_root()
    return {name: load_image(root / f'{name}.png').image for name in ('astronaut', 'chelsea', 'coffee')}


def solid(rgb, size=(96, 64)):
    return Image.new('RGB', size, rgb)


def test_shapes_and_widths(backbone, photos):
    feats = backbone.extract([photos['astronaut'], solid((10, 200, 30), (40, 120))])
    assert backbone.out_channels == DescriptorConfig().width == 42
    assert vision_backend(VisionConfig(arch='descriptors')).widths == VisualWidths.uniform(42, levels=4)
    three_levels = DescriptorBackbone(DescriptorConfig(levels=3, hue_bins=4))
    assert three_levels.widths == VisualWidths.uniform(38, levels=3)
    for f in feats:
        assert f['image'].x.shape == (1, 42) and f['image'].x.dtype == torch.float32
        assert f['region'].x.shape == (49, 42) and f['region']['box'].shape == (49, 4)
        assert f['scale'].x.shape == (16, 42) and f['scale']['box'].shape == (16, 4)
        assert f['scale']['level'].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert backbone.encode_crops([photos['chelsea']] * 3).shape == (3, 42)
    assert backbone.encode_crops([]).shape == (0, 42)
    # Other grids: the width stays, the node counts follow image_size and scale_grid.
    f = DescriptorBackbone(DescriptorConfig(image_size=128, scale_grid=3)).extract([photos['coffee']])[0]
    assert f['region'].x.shape == (16, 42) and f['scale'].x.shape == (4 * 9, 42)


def test_boxes_tile_the_whole_photo(backbone, photos):
    f = backbone.extract([photos['chelsea']])[0]
    torch.testing.assert_close(f['region']['box'][0], torch.tensor([0, 0, 1 / 7, 1 / 7]))
    torch.testing.assert_close(f['region']['box'][8], torch.tensor([1 / 7, 1 / 7, 2 / 7, 2 / 7]))
    box = f['region']['box']
    area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
    torch.testing.assert_close(area.sum(), torch.tensor(1.0))
    torch.testing.assert_close(f['scale']['box'][:4], torch.tensor(
        [[0, 0, .5, .5], [.5, 0, 1, .5], [0, .5, .5, 1], [.5, .5, 1, 1]]))


def test_uneven_grid_cells_partition_the_pixels():
    # Level 3 of a 96 px photo is 12 px; 12 px in 5 cells: 3, 3, 2, 2, 2 pixels -> exact boxes.
    f = DescriptorBackbone(DescriptorConfig(image_size=96, scale_grid=3, levels=3)).extract(
        [solid((0, 0, 0))])[0]
    level2 = f['scale']['box'][f['scale']['level'] == 2]  # 24 px in 3 cells of 8
    torch.testing.assert_close(level2[:3, 0], torch.tensor([0, 1 / 3, 2 / 3]))
    f = DescriptorBackbone(DescriptorConfig(image_size=160, scale_grid=3, levels=3)).extract(
        [solid((0, 0, 0))])[0]
    level2 = f['scale']['box'][f['scale']['level'] == 2]  # 40 px in 3 cells: 14, 13, 13
    torch.testing.assert_close(level2[:3, 0], torch.tensor([0, 14 / 40, 27 / 40]))
    torch.testing.assert_close(level2[:3, 2], torch.tensor([14 / 40, 27 / 40, 1.0]))


def test_solid_colour_by_hand(backbone):
    rgb = (200, 40, 40)  # hue 0 (red), saturation 0.8, value 200/255
    f = backbone.extract([solid(rgb)])[0]
    expected = torch.zeros(42)
    expected[HUE.start + 0] = 1.0                 # every pixel votes hue bin 0
    expected[SATURATION.start + 3] = 1.0          # 0.8 in the 4th of 4 bins
    expected[VALUE.start + 3] = 1.0               # 0.78 in the 4th of 4 bins
    lab = color.rgb2lab(np.array([[rgb]], dtype=np.float64) / 255)[0, 0] / 100
    expected[LAB_MEAN] = torch.tensor(lab, dtype=torch.float32)
    expected[LBP.start + 8] = 1.0                 # flat: every neighbour >= centre, uniform code P
    # no gradient: the orientation block is empty (zero), the magnitude 0; Lab std 0
    for x in (f['image'].x[0], f['region'].x[0], f['region'].x[48], f['scale'].x[15]):
        torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)


def test_grey_photo_casts_no_hue_vote_and_edges_vote_their_orientation(backbone):
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    pixels[:, 32:] = 255  # a vertical edge: horizontal gradient, orientation 0
    f = backbone.extract([Image.fromarray(pixels)])[0]
    assert f['image'].x[0][HUE].abs().sum() == 0
    torch.testing.assert_close(f['image'].x[0][ORIENTATIONS], F.one_hot(torch.tensor(0), 9).float())
    assert f['image'].x[0][MAGNITUDE] > 0
    # Region cells away from the edge have no gradient.
    assert f['region'].x[0, ORIENTATIONS].abs().sum() == 0 and f['region'].x[0, MAGNITUDE] == 0
    assert f['region'].x[3, MAGNITUDE] > 0  # the middle column holds the edge


def test_sqrt_histograms_have_unit_norm(backbone, photos):
    f = backbone.extract([photos['coffee']])[0]
    for block in (HUE, SATURATION, VALUE, ORIENTATIONS, LBP):
        torch.testing.assert_close(f['region'].x[:, block].norm(dim=1), torch.ones(49))


def test_cell_colour_equals_the_cell_cut_out(backbone, photos):
    """Colour blocks of region k are those of its 32 x 32 pixels, described alone."""
    photo = photos['astronaut']
    f = backbone.extract([photo])[0]
    resized = photo.resize((224, 224), Image.BILINEAR)
    for k in (0, 17, 48):
        row, col = divmod(k, 7)
        cell = resized.crop((32 * col, 32 * row, 32 * col + 32, 32 * row + 32))
        alone = DescriptorBackbone(DescriptorConfig(image_size=32, levels=1, scale_grid=1)).extract([cell])[0]
        torch.testing.assert_close(f['region'].x[k, COLOUR], alone['image'].x[0][COLOUR], atol=1e-5, rtol=0)


def test_image_node_is_the_whole_photo_as_one_window(backbone, photos):
    photo = photos['chelsea']
    f = DescriptorBackbone(DescriptorConfig(scale_grid=1)).extract([photo])[0]
    torch.testing.assert_close(f['scale'].x[0], f['image'].x[0])        # level 0, one cell
    torch.testing.assert_close(backbone.encode_crops([photo])[0], f['image'].x[0])
    # Histogram blocks of the whole photo are the pixel-weighted mix of its (equal) cells'.
    regions = backbone.extract([photo])[0]['region'].x
    torch.testing.assert_close(f['image'].x[0, VALUE] ** 2, (regions[:, VALUE] ** 2).mean(0),
                               atol=1e-5, rtol=0)


def test_deterministic(backbone, photos):
    images = list(photos.values())
    a = backbone.extract(images)
    b = DescriptorBackbone().extract(images)
    for x, y in zip(a, b):
        assert torch.equal(x['image'].x[0], y['image'].x[0]) and torch.equal(x['region'].x, y['region'].x)
        assert torch.equal(x['scale'].x, y['scale'].x)


def test_fingerprint_is_the_cache_key(tmp_path):
    base = VisionConfig(arch='descriptors')
    def fingerprint(config):
        backend = vision_backend(config) if isinstance(config, VisionConfig) else DescriptorBackbone(config)
        return backend.fingerprint()

    # Weights and seed mean nothing to descriptors: the same features, the same key.
    assert fingerprint(VisionConfig(arch='descriptors', weights=None, seed=5)) == fingerprint(base)
    assert fingerprint(base) == fingerprint(DescriptorConfig())
    assert fingerprint(base)['version'] >= 1
    others = [fingerprint(VisionConfig(arch='descriptors', image_size=192)),
              fingerprint(VisionConfig(arch='descriptors', scale_grid=3)),
              fingerprint(DescriptorConfig(hue_bins=12)), fingerprint(DescriptorConfig(lbp_radius=2))]
    assert all(o != fingerprint(base) for o in others)

    def cache_dir(vision):
        return FeatureExtractor(vision, DetectorConfig(weights=None), cache_dir=tmp_path).cache.dir

    assert cache_dir(base) == cache_dir(DescriptorBackbone())
    assert cache_dir(base) != cache_dir(VisionConfig(arch='descriptors', scale_grid=3))
    assert cache_dir(base) != cache_dir(DescriptorBackbone(DescriptorConfig(orientations=6)))


def test_informative_photos_differ_more_than_crops_of_one_photo(backbone, photos):
    torch.manual_seed(0)
    crop = T.RandomResizedCrop(160, scale=(0.4, 1.0))
    names = list(photos)
    images = [(name, crop(photos[name])) for name in names for _ in range(4)]
    x = F.normalize(torch.stack([f['image'].x[0] for f in backbone.extract([im for _, im in images])]), dim=1)
    cosine = x @ x.T
    same = torch.tensor([[a == b for b, _ in images] for a, _ in images])
    off_diagonal = ~torch.eye(len(images), dtype=torch.bool)
    within, between = 1 - cosine[same & off_diagonal].mean(), 1 - cosine[~same].mean()  # cosine distances
    assert between > 5 * within  # measured: 0.081 against 0.006 (three warm-toned photos)
    # Every crop is nearer its own photo's other crops than any other photo's.
    nearest = cosine.masked_fill(~off_diagonal, -2).argmax(1)
    assert all(images[i][0] == images[j][0] for i, j in enumerate(nearest.tolist()))


def test_bad_settings_name_the_option():
    with pytest.raises(ValueError, match=r'scale_grid must be between 1 and 7.*got 8'):
        DescriptorConfig(scale_grid=8)
    with pytest.raises(ValueError, match=r'image_size must be at least 32 \(got 16\)'):
        DescriptorConfig(image_size=16)
    with pytest.raises(ValueError, match=r'scale_grid must be between 1 and 2.*8 px.*got 3'):
        DescriptorConfig(image_size=64, scale_grid=3)
    with pytest.raises(ValueError, match=r"VisionBackbone builds one of .*'descriptors'"):
        VisionBackbone(VisionConfig(arch='descriptors'))
    assert isinstance(vision_backend(VisionConfig(arch='descriptors', scale_grid=3)), DescriptorBackbone)
    assert vision_backend(VisionConfig(arch='descriptors', scale_grid=3)).config.scale_grid == 3
    with pytest.raises(ValueError, match=r'scale_grid must be between 1 and 7.*got 8'):
        vision_backend(VisionConfig(arch='descriptors', scale_grid=8))


def test_extractor_without_detector_gives_no_objects(tmp_path, photos):
    path = tmp_path / 'coffee.png'
    photos['coffee'].save(path)
    extractor = FeatureExtractor(VisionConfig(arch='descriptors'), DetectorConfig(weights=None),
                                 cache_dir=tmp_path / 'cache', progress=False)
    [f] = extractor.extract([path])
    assert f['object'].x.shape == (0, 42) and f.names('object') == [] and f['region'].x.shape == (49, 42)
    assert extractor.detector is None
    again = FeatureExtractor(VisionConfig(arch='descriptors'), DetectorConfig(weights=None),
                             cache_dir=tmp_path / 'cache', progress=False)
    [cached] = again.extract([path])
    assert again.report.cached == 1 and torch.equal(cached['region'].x, f['region'].x)


def test_features_are_bit_identical_to_the_flat_layouts():
    """SHA-256 of the float32 bytes of the astronaut photo's image, region (x, box) and scale
    (x, level, box) nodes and of one crop, in that order, computed with the code of before the
    node-type layout (ImageFeatures of flat fields): the demo and probe features did not change."""
    import hashlib

    from skimage import data

    photo = Image.fromarray(data.astronaut())
    backbone = DescriptorBackbone()
    f = backbone.extract([photo])[0]
    crop = backbone.encode_crops([photo.crop((10, 20, 200, 150))])
    digest = hashlib.sha256()
    for t in (f['image'].x, f['region'].x, f['region']['box'], f['scale'].x, f['scale']['level'],
              f['scale']['box'], crop):
        digest.update(t.contiguous().numpy().tobytes())
    assert digest.hexdigest() == 'a769eae995ccc7207b496196b73b1c2ed26a01935c4be9bf5153edf3b5507247'


def test_native_levels_are_four_pixel_cells(photos):
    """scale_grid=0: level l is cut into cells of 4 px of its own resolution (56 / 28 / 14 / 7 a side at
    224 px, ResNet's stages), one cell per node: level 3 is the 7 x 7 grid of scale_grid=7's level 3,
    and level 0 averages to the 7 x 7 grid's colour means."""
    photo = photos['coffee']
    native = DescriptorBackbone(DescriptorConfig(scale_grid=0)).extract([photo])[0]['scale']
    seven = DescriptorBackbone(DescriptorConfig(scale_grid=7)).extract([photo])[0]['scale']
    assert native['level'].bincount().tolist() == [56 ** 2, 28 ** 2, 14 ** 2, 7 ** 2]
    torch.testing.assert_close(native.x[native['level'] == 3], seven.x[seven['level'] == 3])
    torch.testing.assert_close(native['box'][native['level'] == 3], seven['box'][seven['level'] == 3])
    fine = native.x[native['level'] == 0].view(7, 8, 7, 8, -1)[..., LAB_MEAN]   # 8 x 8 cells per 7 x 7 cell
    torch.testing.assert_close(fine.mean(dim=(1, 3)).reshape(49, 3), seven.x[seven['level'] == 0, LAB_MEAN],
                               atol=1e-5, rtol=1e-5)
    assert native['box'][1].tolist() == pytest.approx([4 / 224, 0, 8 / 224, 4 / 224])
