"""Run settings typed by the config dataclasses."""
import pytest

from graphmner.graph import GraphOptions
from graphmner.models.ita import ITAConfig
from graphmner.train import TrainConfig
from graphmner.train.settings import SettingsError, apply_overrides, read_config

CLASSES = {'model': ITAConfig, 'train': TrainConfig, 'data': GraphOptions}


def test_values_take_the_type_of_their_field(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text('model:\n  temperature: 2\n  aux_sources: [caption]\ntrain:\n  head_lr: 1e-3\n'
                    'data:\n  vision_weights: null\n  aux_sources: [tag, caption]\n')
    settings = read_config(path, CLASSES)
    assert settings['model']['temperature'] == 2.0 and isinstance(settings['model']['temperature'], float)
    assert settings['train']['head_lr'] == 1e-3  # YAML reads 1e-3 as a string
    assert settings['data'] == {'vision_weights': None, 'aux_sources': ('tag', 'caption')}
    apply_overrides(settings, ['train.epochs=7', 'model.encoder=../models/x', 'model.cva=false',
                               'data.vision_weights=resnet.pth', 'model.tag_scheme=123'], CLASSES)
    assert settings['train']['epochs'] == 7 and settings['model']['cva'] is False
    assert settings['model']['encoder'] == '../models/x'
    assert settings['data']['vision_weights'] == 'resnet.pth'
    assert settings['model']['tag_scheme'] == '123'  # a string field keeps the text as written


@pytest.mark.parametrize('override, message', [
    ('train.epochs=2.5', "'train.epochs' must be an integer, got '2.5'"),
    ('train.epochs=true', "'train.epochs' must be an integer, got 'true'"),
    ('model.cva=maybe', "'model.cva' must be true or false, got 'maybe'"),
    ('data.aux_sources=caption', "'data.aux_sources' must be a list, got 'caption'"),
    ('train.lr=1', "unknown setting 'train.lr'; valid: train.batch_size, "),
    ('model=3', 'SECTION.KEY=VALUE'),
])
def test_mistakes_name_the_key_and_what_it_expects(override, message):
    with pytest.raises(SettingsError) as error:
        apply_overrides({'model': {}, 'train': {}, 'data': {}}, [override], CLASSES)
    assert message in str(error.value) and '\n' not in str(error.value)


def test_bad_config_files(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text('modle:\n  x: 1\n')
    with pytest.raises(SettingsError, match='sections model, train, data'):
        read_config(path, CLASSES)
    path.write_text('model: [unclosed\n')
    with pytest.raises(SettingsError, match='is not valid YAML'):
        read_config(path, CLASSES)
    with pytest.raises(SettingsError, match='cannot read the config'):
        read_config(tmp_path / 'none.yaml', CLASSES)
