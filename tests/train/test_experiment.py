"""graphmner.train.experiment: the run spec, its checks before anything heavy loads, its configs."""
import dataclasses
import os

import pytest
import torch

from graphmner.cli import main
from graphmner.data.conll import read_conll, write_conll
from graphmner.data.demo import DEMO_DIR, DEMO_OPTIONS
from graphmner.graph.options import GraphOptions
from graphmner.models import available, model_class
from graphmner.train import TrainConfig
from graphmner.train.experiment import (
    DEMO_ENCODER,
    ExperimentError,
    RunSpec,
    check_device,
    config_file,
    load_spec,
)


def _folder(tmp_path, train_text=None):
    folder = tmp_path / 'data'
    folder.mkdir()
    for split in ('train', 'valid', 'test'):
        write_conll(read_conll(DEMO_DIR / f'{split}.txt')[:6], folder / f'{split}.txt')
    if train_text is not None:
        (folder / 'train.txt').write_text(train_text)
    return folder


def test_every_model_has_a_packaged_config_per_dataset():
    for model in available():
        for dataset in ('demo', 'twitter2015', 'twitter2017'):
            path = config_file(model, dataset)
            assert path.is_file() and path.name == f'{model}_{dataset}.yaml', path
            assert path.parent.name == 'configs' and path.parent.parent.name == 'graphmner'
    assert config_file('umgf', 'some/folder').name == 'umgf_twitter2017.yaml'  # a folder reads 2017's


def test_spec_is_typed_config_then_values_then_overrides(tmp_path):
    spec = load_spec('umgf', 'demo', values={'train': {'epochs': 4, 'head_lr': 1e-3}, 'model': {'heads': 2}},
                     overrides=['train.epochs=5', 'data.top_k=2'], out=tmp_path / 'run')
    assert isinstance(spec.model_config, model_class('umgf').config_class)
    assert isinstance(spec.train, TrainConfig) and isinstance(spec.data, GraphOptions)
    assert spec.train.epochs == 5 and spec.train.head_lr == 1e-3 and spec.model_config.heads == 2
    # the demo's own graph options under the config's and the overrides
    assert spec.data == GraphOptions(**{**DEMO_OPTIONS, 'top_k': 2})
    assert spec.run_dir == tmp_path / 'run'
    with pytest.raises(ExperimentError, match="'train.epochs' must be at least 1, got 0"):
        load_spec('bert-crf', overrides=['train.epochs=0'])
    with pytest.raises(ExperimentError, match="unknown setting 'train.nonsense'"):
        load_spec('bert-crf', values={'train': {'nonsense': 1}})
    with pytest.raises(ExperimentError, match="Unknown model 'nope'"):
        load_spec('nope')


def test_default_run_folder_and_demo_encoder_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ../shared/models here
    spec = load_spec('bert-crf')
    assert spec.run_dir == tmp_path / 'runs' / 'bert-crf-demo-seed1'
    assert spec.model_config.encoder == str(DEMO_ENCODER)
    with pytest.raises(ExperimentError, match="the demo's default encoder '../shared/models/all-MiniLM-L6-v2"
                                              r"' \(beside the checkout\) is not there: give --encoder"):
        spec.validate()


def test_a_malformed_split_line_is_found_before_any_work(tmp_path, tiny_encoder, capsys):
    text = (DEMO_DIR / 'train.txt').read_text().splitlines()
    text[1] = 'word\twith\tthree columns'
    folder = _folder(tmp_path, '\n'.join(text) + '\n')
    spec = load_spec('bert-crf', str(folder), values={'model': {'encoder': tiny_encoder}},
                     out=tmp_path / 'run')
    with pytest.raises(ExperimentError, match=f'{folder / "train.txt"}:2:'):
        spec.validate()
    with pytest.raises(SystemExit) as stop:
        main(['train', '--model', 'bert-crf', '--dataset', str(folder), '--encoder', tiny_encoder,
              '--out', str(tmp_path / 'run')])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count('\n') == 1 and 'train.txt:2:' in err, err
    assert not (tmp_path / 'run').exists()


def test_a_malformed_caption_file_and_a_missing_image_folder_are_refused(tmp_path, tiny_encoder):
    captions = tmp_path / 'captions.txt'
    captions.write_text('a.jpg :fine\nno separator here\n')
    base = {'values': {'model': {'encoder': tiny_encoder}}, 'out': tmp_path / 'run'}
    with pytest.raises(ExperimentError, match='--captions: .*captions.txt:2:'):
        load_spec('ita', captions=str(captions), **base).validate()
    with pytest.raises(ExperimentError, match="--image-root '.*nowhere' does not exist"):
        load_spec('umgf', image_root=str(tmp_path / 'nowhere'), **base).validate()


def test_the_device_is_probed(monkeypatch):
    with pytest.raises(ExperimentError, match="--device 'gpu0' is not a device"):
        check_device('gpu0')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ExperimentError, match="--device 'cuda:3': this machine has no CUDA device"):
        check_device('cuda:3')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    check_device('cuda:1')
    with pytest.raises(ExperimentError, match=r"this machine has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        check_device('cuda:3')
    with pytest.raises(ExperimentError, match='fp16 needs a CUDA device'):
        check_device('cpu', 'fp16')
    check_device('cpu', 'bf16')


def test_device_mistake_is_one_line_from_the_command(tiny_encoder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit) as stop:
        main(['train', '--model', 'bert-crf', '--encoder', tiny_encoder, '--device', 'cuda:3',
              '--out', str(tmp_path / 'run')])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err == "graphmner train: error: --device 'cuda:3': this machine has no " \
        'CUDA device; use --device cpu\n'
    assert not (tmp_path / 'run').exists()


def test_configs_of_the_wrong_type_are_refused(tiny_encoder):
    spec = load_spec('bert-crf', values={'model': {'encoder': tiny_encoder}})
    wrong = dataclasses.replace(spec, model_config=model_class('umgf').config_class(encoder=tiny_encoder))
    with pytest.raises(ExperimentError, match="RunSpec.model_config of 'bert-crf' must be a BertCRFConfig, "
                                              'got UMGFConfig'):
        wrong.validate()
    assert isinstance(RunSpec('bert-crf', spec.model_config).train, TrainConfig)


def test_batch_size_that_the_processes_cannot_share_is_refused(tiny_encoder, monkeypatch):
    monkeypatch.setitem(os.environ, 'WORLD_SIZE', '2')
    spec = load_spec('bert-crf', values={'model': {'encoder': tiny_encoder}, 'train': {'batch_size': 3}})
    with pytest.raises(ExperimentError, match='must divide by the 2 processes'):
        spec.validate()


@pytest.mark.parametrize('overrides, message', [
    (['model.pyramid=native'], r"model.pyramid='native' reads every stage at its own resolution, which needs "
                               r'data.scale_grid=0 \(got 7\)'),
    (['data.scale_grid=0'], r"model.pyramid='pooled' reads pooled grids, but data.scale_grid=0 keeps every "
                            r'stage at its own resolution: set model.pyramid=native'),
])
def test_gmf_pyramid_order_and_scale_grid_must_agree(overrides, message):
    """GMF's pyramid='native' reads the stage maps scale_grid=0 caches, and only those: a mismatch is one
    line before any photo is read; the agreeing pair validates."""
    with pytest.raises(ExperimentError, match=message):
        load_spec('gmf', overrides=overrides).validate()
    load_spec('gmf', overrides=['model.pyramid=native', 'data.scale_grid=0']).check_configs()
