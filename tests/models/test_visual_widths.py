"""Model configs take their visual input widths from the vision backend
(``fit_visual_widths``), GMF's pyramid level widths included, and a checkpoint
read with features of other widths is one clear error."""
import json

import pytest
import torch
from conftest import ROOT, load_experiment

from graphmner import models
from graphmner.features.backends import vision_backend
from graphmner.features.types import VisualWidths
from graphmner.features.vision import VisionConfig
from graphmner.graph import GraphOptions, backend_widths
from graphmner.models.gmf import GMFConfig

RESNET = vision_backend(VisionConfig(arch='resnet50', weights=None)).widths
DESCRIPTORS = vision_backend(VisionConfig(arch='descriptors')).widths
#: gmf_twitter2017.yaml's visual settings (ResNet-50).
TWITTER2017_GMF = {'visual_dim': 2048, 'scale_dims': [256, 512, 1024, 2048]}


def config(name, **settings):
    return models.model_class(name).config_class(**settings)


@pytest.mark.parametrize('name', ['umgf', 'maf', 'gmf'])
def test_visual_dim_is_the_backends(name):
    assert config(name, visual_dim=7).fit_visual_widths(DESCRIPTORS).visual_dim == 42
    assert config(name, visual_dim=7).fit_visual_widths(RESNET).visual_dim == 2048


def test_gmf_pyramid_widths_are_the_backends_levels():
    resnet = GMFConfig(visual_dim=42).fit_visual_widths(RESNET)
    assert resnet.scale_dims == [256, 512, 1024, 2048] and resnet.level_dims == [256, 512, 1024, 2048]
    # every level as wide as the nodes: scale_dims None (all channels), as gmf_demo.yaml writes it
    descriptors = GMFConfig(**TWITTER2017_GMF).fit_visual_widths(DESCRIPTORS)
    assert (descriptors.visual_dim, descriptors.scale_dims, descriptors.level_dims) == (42, None, [42] * 4)
    assert GMFConfig(**TWITTER2017_GMF).fit_visual_widths(RESNET) == GMFConfig(**TWITTER2017_GMF)


@pytest.mark.parametrize('name', ['bert-crf', 'ita'])
def test_a_model_reading_no_visual_feature_keeps_its_config(name):
    given = config(name)
    assert given.fit_visual_widths(DESCRIPTORS) == given


def test_widths_a_model_cannot_use_are_refused_in_one_line():
    three_levels = VisualWidths.uniform(42, levels=3)
    with pytest.raises(ValueError, match=r'^GMF reads 4 pyramid levels, but the vision backend gives 3 '
                                         r'\(widths \[42, 42, 42\]\)$'):
        GMFConfig().fit_visual_widths(three_levels)
    uneven = VisualWidths({'image': 16, 'region': 42, 'scale': 42, 'object': 42}, (42, ) * 4)
    with pytest.raises(ValueError, match=r"^MAF reads region, image through one visual_dim, but the vision "
                                         r"backend gives them the widths \{'region': 42, 'image': 16\}$"):
        config('maf').fit_visual_widths(uneven)


def test_the_widths_come_from_the_options_backend_without_loading_it():
    assert backend_widths(GraphOptions(vision_arch='descriptors', scale_grid=7)) == DESCRIPTORS
    # ImageNet weights that this machine does not have: the widths need no weight file
    assert backend_widths(GraphOptions(vision_arch='resnet152', vision_weights='imagenet')) == RESNET


def test_a_checkpoint_read_with_other_widths_is_one_clear_error(tiny_encoder, tmp_path):
    built = GMFConfig(encoder=tiny_encoder, reduction=2, dilation=2, **TWITTER2017_GMF).fit_visual_widths(
        DESCRIPTORS)
    torch.manual_seed(0)
    models.build('gmf', **vars(built)).save(tmp_path / 'best.pt')
    loaded = models.load(tmp_path / 'best.pt')
    loaded.config.check_visual_widths(DESCRIPTORS)  # the data it was trained on: fine
    with pytest.raises(ValueError) as error:
        loaded.config.check_visual_widths(RESNET, 'the ResNet-50 data')
    message = str(error.value)
    assert message == ('GMFConfig was built for visual widths visual_dim=42, scale_dims=None; the ResNet-50 '
                       'data has visual_dim=2048, scale_dims=[256, 512, 1024, 2048]')
    assert '\n' not in message


@pytest.mark.slow
def test_gmf_twitter2017_settings_train_on_the_weight_free_backend(tiny_encoder, graph_cache, tmp_path):
    """Issue 24: ``--set data.vision_arch=descriptors`` on the Twitter-2017 GMF config died in
    GMFConfig (scale_dims [256, 512, 1024, 2048] against visual_dim 42). Here on the demo tweets
    (the Twitter images are not on this machine), one epoch."""
    run = load_experiment('run')
    config = ROOT / 'graphmner' / 'configs' / 'gmf_twitter2017.yaml'
    metrics = run.main(['--model', 'gmf', '--config', str(config), '--encoder', tiny_encoder, '--epochs', '1',
                        '--batch-size', '8', '--detector-weights', 'none',
                        '--set', 'data.vision_arch=descriptors', '--set', 'model.max_length=64',
                        '--out', str(tmp_path / 'run'), '--cache-dir', str(graph_cache)])
    model = metrics['settings']['model']
    assert (model['visual_dim'], model['scale_dims']) == (42, None)
    assert json.loads((tmp_path / 'run' / 'metrics.json').read_text())['history']
    assert models.load(tmp_path / 'run' / 'best.pt').config.level_dims == [42] * 4
