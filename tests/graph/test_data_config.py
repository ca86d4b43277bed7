"""graphmner.graph.data_config: the typed data record a checkpoint carries (format 3), and format 2's."""
import dataclasses

import pytest
import torch

from graphmner import Tagger, models
from graphmner.data.datasets import dataset_definition
from graphmner.graph.data_config import DataConfig
from graphmner.graph.options import GraphOptions
from graphmner.io import CheckpointError
from graphmner.train.experiment import load_spec, run


@pytest.fixture(scope='module')
def trained(tiny_encoder, graph_cache, tmp_path_factory):
    """A small UMGF trained one epoch on the demo through the experiment API."""
    spec = load_spec('umgf', values={'model': {'encoder': tiny_encoder, 'd_model': 32, 'heads': 2, 'ffn': 32},
                                     'train': {'epochs': 1}},
                     out=tmp_path_factory.mktemp('umgf-data-config'), cache_dir=str(graph_cache))
    return spec, run(spec)


def test_each_dataset_knows_its_tokenizer_style():
    assert dataset_definition('twitter2017').tokenizer == 'twitter2017'
    for name in ('demo', 'twitter2015', 'some/folder'):
        assert dataset_definition(name).tokenizer == 'twitter2015'
    for dataset, style in (('twitter2017', 'twitter2017'), ('twitter2015', 'twitter2015')):
        record = DataConfig.of_training(dataset, _Split(report={'tweets': 3, 'images_missing': 3}))
        assert record.tokenizer == style and record.images_seen == 0 and record.dataset == dataset


class _Split(list):
    """A training split of no graphs: only its build report and options."""

    def __init__(self, report):
        super().__init__()
        self.report, self.options = report, GraphOptions()


def test_a_run_records_its_data_and_the_checkpoint_restores_it(trained):
    spec, result = trained
    record = result.model.data_config
    assert isinstance(record, DataConfig) and record.options == spec.data
    assert record.dataset == 'demo' and record.tokenizer == 'twitter2015'
    assert record.captions is not None and record.captions.endswith('captions.txt')  # the demo's own
    width = result.model.config.visual_dim
    assert record.visual_widths == {'image': width, 'region': width, 'scale': width, 'object': width}
    assert 'descriptors' in record.visual_backend and record.images_seen > 0
    loaded = models.load(result.run_dir / 'best.pt')
    assert loaded.data_config == record
    assert torch.load(result.run_dir / 'best.pt', weights_only=True)['format'] == 3


def test_a_format_2_checkpoint_loads_with_its_dict_converted(trained, tmp_path, graph_cache):
    _, result = trained
    old = torch.load(result.run_dir / 'best.pt', weights_only=True)
    options = dataclasses.asdict(result.model.data_config.options)
    options['aux_sources'] = list(options['aux_sources'])  # as some format-2 writers stored it
    old.update(format=2, data={'dataset': 'twitter2017', 'options': options, 'captions': None,
                               'tokenizer': 'twitter2017', 'images_seen': 0})
    torch.save(old, tmp_path / 'format2.pt')
    model = models.load(tmp_path / 'format2.pt')
    assert model.data_config == DataConfig('twitter2017', result.model.data_config.options, 'twitter2017')
    assert isinstance(model.data_config.options.aux_sources, tuple)
    tagger = Tagger.load(tmp_path / 'format2.pt', cache_dir=graph_cache)
    assert tagger.predict('#NBA tonight').words == ['#', 'NBA', 'tonight']  # Twitter-2017's style


def test_other_formats_are_refused_in_one_line(trained, tmp_path):
    _, result = trained
    checkpoint = torch.load(result.run_dir / 'best.pt', weights_only=True)
    for written in (1, 4):
        checkpoint.update(format=written)
        torch.save(checkpoint, tmp_path / f'format{written}.pt')
        with pytest.raises(CheckpointError, match=f'checkpoint format {written}\\); this is graphmner .* '
                                                  '\\(format 3\\): retrain'):
            models.load(tmp_path / f'format{written}.pt')
    checkpoint.update(format=3, data={'options': {'no_such_option': 1}})
    torch.save(checkpoint, tmp_path / 'bad-data.pt')
    with pytest.raises(CheckpointError, match='holds a data config this graphmner cannot read'):
        models.load(tmp_path / 'bad-data.pt')


def test_the_cascade_settings_come_back_typed():
    """A checkpoint's plain values (JSON-like lists) read back as the GraphOptions they were."""
    options = GraphOptions(detector_arch='cascade', detector_weights='opencv', cascades=('profileface',),
                           hog_people=True, ocr=True, ocr_min_confidence=0.8)
    values = DataConfig('demo', options).to_dict()
    values['options']['cascades'] = list(values['options']['cascades'])
    assert DataConfig.from_dict(values).options == options
    assert DataConfig.from_dict(DataConfig('demo', GraphOptions()).to_dict()).options.cascades is None
