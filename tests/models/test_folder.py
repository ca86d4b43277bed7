"""Model folders: save_pretrained / load_pretrained round trips for every registered model, safetensors
with shared tensors, the model card, and every folder that is not ours refused in one line."""
import dataclasses
import json
import shutil

import pytest
import torch
from conftest import batch_for, fake_features
from safetensors import safe_open
from torch import nn

from graphmner import models
from graphmner.data.conll import read_conll
from graphmner.data.demo import demo_split_path
from graphmner.features.types import VisualWidths
from graphmner.graph.builder import build_graph
from graphmner.graph.data_config import DataConfig
from graphmner.graph.options import GraphOptions
from graphmner.models.folder import (
    FOLDER_FORMAT,
    ModelFolderError,
    load_pretrained,
    load_state,
    save_pretrained,
    save_state,
)


@pytest.fixture(scope='module')
def graphs():
    tweets = read_conll(demo_split_path('train'))[:6]
    return [build_graph(t, None if i % 3 == 2 else fake_features(num_objects=i % 3, dim=2048, seed=i),
                        aux=[('a', 'caption'), ('dog', 'caption')] if i % 2 == 0 else [],
                        widths=VisualWidths.uniform(2048))
            for i, t in enumerate(tweets)]


DATA = DataConfig(dataset='twitter2017', options=GraphOptions(vision_arch='descriptors', top_k=3,
                                                              aux_sources=('caption',)),
                  tokenizer='twitter2017', visual_backend='descriptors (weight-free)',
                  visual_widths={'region': 2048}, images_seen=5)


@pytest.mark.parametrize('name', models.available())
def test_a_folder_rebuilds_the_same_model(name, tiny_encoder, graphs, tmp_path):
    torch.manual_seed(0)
    model = models.build(name, encoder=tiny_encoder).eval()
    with torch.no_grad():  # weights unlike any fresh build: the loaded model must read them all
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.data_config = DATA
    folder = save_pretrained(model, tmp_path / name)
    assert sorted(p.name for p in folder.iterdir()) == ['README.md', 'config.json', 'encoder',
                                                        'model.safetensors']
    assert not [p for p in (folder / 'encoder').iterdir() if p.suffix in ('.safetensors', '.bin')]
    with safe_open(folder / 'model.safetensors', 'pt') as f:
        assert set(f.keys()) == set(model.state_dict())
    config = json.loads((folder / 'config.json').read_text())
    assert config['graphmner_format'] == FOLDER_FORMAT and config['model'] == name
    assert config['encoder_origin'] == tiny_encoder and config['model_config']['encoder'] == 'encoder'

    loaded = load_pretrained(folder).eval()
    assert type(loaded) is type(model) and loaded.labels == model.labels
    assert loaded.config == dataclasses.replace(model.config, encoder=str(folder / 'encoder'))
    assert loaded.data_config == DATA
    batch = batch_for(model, graphs)
    torch.testing.assert_close(loaded(batch).emissions, model(batch).emissions, rtol=0, atol=0)
    assert loaded.decode(batch) == model.decode(batch)


def test_a_folder_needs_no_other_encoder_folder(tiny_encoder, graphs, tmp_path):
    encoder = shutil.copytree(tiny_encoder, tmp_path / 'my-encoder')
    model = models.build('bert-crf', encoder=str(encoder)).eval()
    folder = save_pretrained(model, tmp_path / 'folder')
    shutil.rmtree(encoder)
    loaded = load_pretrained(folder).eval()
    batch = batch_for(model, graphs)
    assert loaded.decode(batch) == model.decode(batch)
    # saved again from the folder, it still names the encoder it was fine-tuned from
    again = save_pretrained(loaded, tmp_path / 'again')
    assert json.loads((again / 'config.json').read_text())['encoder_origin'] == str(encoder)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.out = nn.Linear(3, 5, bias=False)
        self.out.weight = self.embed.weight  # one tensor under two names


def test_shared_tensors_are_stored_once_and_read_back_under_both_names(tmp_path):
    torch.manual_seed(0)
    tied = Tied()
    save_state(tied, tmp_path / 'tied.safetensors')
    with safe_open(tmp_path / 'tied.safetensors', 'pt') as f:
        assert len(list(f.keys())) == 1
    fresh = Tied()
    load_state(fresh, tmp_path / 'tied.safetensors')
    torch.testing.assert_close(fresh.embed.weight, tied.embed.weight, rtol=0, atol=0)
    assert fresh.out.weight is fresh.embed.weight


def test_weights_that_do_not_fit_are_one_line(tiny_encoder, tmp_path):
    folder = save_pretrained(models.build('bert-crf', encoder=tiny_encoder), tmp_path / 'm')
    config = json.loads((folder / 'config.json').read_text())
    config['labels'] = config['labels'][:5]  # a 5-label emission layer against a 9-label file
    (folder / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match='does not fit the model its config.json describes'):
        load_pretrained(folder)
    (folder / 'model.safetensors').write_bytes(b'not safetensors')
    with pytest.raises(ModelFolderError, match='is not a readable safetensors file'):
        load_pretrained(folder)


def test_folders_that_are_not_ours_are_refused(tiny_encoder, tmp_path):
    def refused(folder, match):
        with pytest.raises(ModelFolderError, match=match) as error:
            load_pretrained(folder)
        assert '\n' not in str(error.value)

    refused(tmp_path / 'nowhere', 'no model folder at')
    refused(tiny_encoder, "not a graphmner model folder .*a Hugging Face 'bert' model folder")
    (tmp_path / 'empty').mkdir()
    refused(tmp_path / 'empty', 'has no config.json')
    folder = save_pretrained(models.build('bert-crf', encoder=tiny_encoder), tmp_path / 'm')
    config = json.loads((folder / 'config.json').read_text())
    (folder / 'config.json').write_text(json.dumps({**config, 'graphmner_format': FOLDER_FORMAT + 1,
                                                    'graphmner_version': '9.0.0'}))
    refused(folder, rf'written by graphmner 9.0.0 \(model folder format {FOLDER_FORMAT + 1}\)')
    (folder / 'config.json').write_text(json.dumps({**config, 'model': 'crf-lstm'}))
    refused(folder, "holds a 'crf-lstm' model, which this graphmner does not have")
    (folder / 'config.json').write_text('{"graphmner_format": 1,')
    refused(folder, 'is not readable JSON')
    (folder / 'config.json').write_text(json.dumps(config))
    (folder / 'model.safetensors').unlink()
    refused(folder, 'has no model.safetensors')


def test_saving_replaces_a_model_folder_and_refuses_any_other(tiny_encoder, tmp_path):
    other = tmp_path / 'project'
    other.mkdir()
    (other / 'README.md').write_text('my project')
    model = models.build('bert-crf', encoder=tiny_encoder)
    with pytest.raises(ModelFolderError, match='a folder with other content'):
        save_pretrained(model, other)
    assert (other / 'README.md').read_text() == 'my project' and len(list(other.iterdir())) == 1
    folder = save_pretrained(model, tmp_path / 'm')
    (folder / 'notes.txt').write_text('kept')
    (folder / 'encoder' / 'stale.txt').write_text('gone')
    save_pretrained(models.build('maf', encoder=tiny_encoder), folder)
    assert json.loads((folder / 'config.json').read_text())['model'] == 'maf'
    assert (folder / 'notes.txt').read_text() == 'kept' and not (folder / 'encoder' / 'stale.txt').exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no staging folder left


def test_the_card_reports_the_run_and_what_the_model_reads(tiny_encoder, tmp_path):
    model = models.build('maf', encoder=tiny_encoder)
    model.data_config = DATA
    run = tmp_path / 'runs' / 'maf-twitter2017-seed1'
    run.mkdir(parents=True)
    scores = lambda f1: {'precision': 0.5, 'recall': 0.25, 'f1': f1, 'support': 8, 'predicted': 4,
                         'per_type': {'PER': {'precision': 1.0, 'recall': 1.0, 'f1': 0.75}}}
    (run / 'metrics.json').write_text(json.dumps({
        'model': 'maf', 'labels': list(model.labels), 'seed': 1, 'dev': scores(0.3125), 'test': scores(0.4),
        'test_views': {}, 'settings': {'train': {'epochs': 7, 'lr': 5e-05}}}))
    card = (save_pretrained(model, tmp_path / 'maf', run=run) / 'README.md').read_text()
    assert card.startswith('---\nlibrary_name: graphmner\n')
    assert 'trained on **twitter2017**' in card and '`maf-twitter2017-seed1`' in card
    assert '| dev | 50.00 | 25.00 | 31.25 | 8 |' in card and '| test | 50.00 | 25.00 | 40.00 | 8 |' in card
    assert 'PER 75.00' in card and '| `epochs` | `7` |' in card
    assert '`region` nodes' in card
    assert 'the photo: yes, visual features from **descriptors (weight-free)**' in card
    assert 'fine-tuned from `tiny-bert' in card and str(tmp_path) not in card  # no machine path
    # another model's metrics.json gives no scores, and the card says why
    card = (save_pretrained(models.build('bert-crf', encoder=tiny_encoder), tmp_path / 'b', run=run)
            / 'README.md').read_text()
    assert "No scores: the metrics.json of the run folder 'maf-twitter2017-seed1' records another model " \
           "('maf', not 'bert-crf')" in card and str(tmp_path) not in card
    assert 'the photo: no (a text-only model' in card and '`region`' not in card and '`image`' not in card
    # and so does one of the same method with other labels
    other = models.build('maf', labels=['O', 'B-PER', 'I-PER'], encoder=tiny_encoder)
    card = (save_pretrained(other, tmp_path / 'o', run=run) / 'README.md').read_text()
    assert 'records a model with other labels' in card and '| test |' not in card
    # ITA reads the photo as text only
    ita = save_pretrained(models.build('ita', encoder=tiny_encoder), tmp_path / 'i')
    card = (ita / 'README.md').read_text()
    assert 'the photo: only as image text, no visual features' in card and '- image text: caption' in card


def test_an_encoder_folder_without_weights_builds_only_for_a_state_dict_to_come(tiny_encoder, tmp_path):
    """The folder's encoder/ holds no weights: building from it is the loader's business; training
    on it (outside weights_loaded_later) stays an error, never silently random weights."""
    from graphmner.nn.encoder import TextEncoder, weights_loaded_later

    folder = save_pretrained(models.build('bert-crf', encoder=tiny_encoder), tmp_path / 'm')
    with pytest.raises(OSError, match='Cannot load the text encoder'):
        TextEncoder(str(folder / 'encoder'))
    with weights_loaded_later():
        encoder = TextEncoder(str(folder / 'encoder'), pooler=True)
    assert encoder.hidden_size == 32 and encoder.model.pooler is not None
    with pytest.raises(OSError):
        TextEncoder(str(folder / 'encoder'))  # the block is over
