"""graphmner export-model: a run's best.pt becomes a model folder that tags as best.pt does."""
import json

import pytest
from conftest import error_of

from graphmner import Tagger
from graphmner.cli import main
from graphmner.data.demo import demo_image_root

TWEETS = ['Barack Obama visits Paris with the Lakers', 'RT @nba : Kawhi Leonard wins #NBAAwards in Toronto',
          'Handsome Rob after a fish dinner']


@pytest.fixture(scope='module', params=['bert-crf', 'maf'])
def run(request, tiny_encoder, graph_cache, tmp_path_factory):
    """A tiny model of a text-only and of a visual method, trained one epoch on the demo."""
    out = tmp_path_factory.mktemp(f'{request.param}-run')
    main(['train', '--model', request.param, '--encoder', tiny_encoder, '--epochs', '1', '--out', str(out),
          '--cache-dir', str(graph_cache)])
    return out


def test_the_folder_tags_as_best_pt_does(run, graph_cache, tmp_path, capsys):
    folder = tmp_path / 'model'
    main(['export-model', str(run / 'best.pt'), str(folder)])
    assert capsys.readouterr().out == f'wrote the model folder {folder} (config.json, model.safetensors, ' \
                                      'encoder/, README.md)\n'
    photos = [demo_image_root() / f'{name}.png' for name in ('astronaut', 'chelsea', 'coffee')]
    expected = Tagger.load(run / 'best.pt', cache_dir=graph_cache).predict(TWEETS, images=photos)
    tagger = Tagger.from_pretrained(folder, cache_dir=graph_cache)
    assert tagger.predict(TWEETS, images=photos) == expected  # labels, entities, confidences, notes
    assert tagger.reads_images == (run.name.startswith('maf'))
    if tagger.reads_images:
        assert all(p.image_used for p in expected)
    # the predict command takes the folder too
    prediction = main(['predict', str(folder), '--text', TWEETS[0], '--cache-dir', str(graph_cache)])
    assert prediction == Tagger.load(run / 'best.pt', cache_dir=graph_cache).predict(TWEETS[0])


def test_the_card_has_the_run_scores(run, tmp_path, capsys):
    folder = tmp_path / 'model'
    main(['export-model', str(run / 'best.pt'), str(folder)])
    metrics = json.loads((run / 'metrics.json').read_text())
    card = (folder / 'README.md').read_text()
    assert f"| test | {100 * metrics['test']['precision']:.2f} | {100 * metrics['test']['recall']:.2f} | " \
           f"{100 * metrics['test']['f1']:.2f} |" in card
    assert f'`{run.name}`' in card and 'trained on **demo**' in card
    config = json.loads((folder / 'config.json').read_text())
    assert config['data_config']['dataset'] == 'demo' and config['labels'] == metrics['labels']
    # a tagger saved from best.pt finds the same run folder
    again = Tagger.load(run / 'best.pt').save_pretrained(tmp_path / 'again')
    assert (again / 'README.md').read_text() == card.replace('(model)', '(again)').replace(
        "from_pretrained('model')", "from_pretrained('again')").replace('predict model ', 'predict again ')


def test_mistakes_are_one_line(run, tiny_encoder, tmp_path, capsys):
    assert "no checkpoint at '" in error_of(['export-model', str(tmp_path / 'none.pt'), str(tmp_path / 'm')],
                                            capsys)
    assert 'is not a graphmner model checkpoint' in error_of(['export-model', str(run / 'last.pt'),
                                                              str(tmp_path / 'm')], capsys)
    busy = tmp_path / 'busy'
    busy.mkdir()
    (busy / 'data.txt').write_text('mine')
    assert 'a folder with other content' in error_of(['export-model', str(run / 'best.pt'), str(busy)],
                                                     capsys)
    assert (busy / 'data.txt').read_text() == 'mine'
    err = error_of(['predict', tiny_encoder, '--text', 'Rob'], capsys)
    assert err.startswith('graphmner predict: error: ') and "a Hugging Face 'bert' model folder" in err
    folder = tmp_path / 'model'
    main(['export-model', str(run / 'best.pt'), str(folder)])
    config = json.loads((folder / 'config.json').read_text())
    (folder / 'config.json').write_text(json.dumps({**config, 'graphmner_format': 0}))
    assert '(model folder format 0)' in error_of(['predict', str(folder), '--text', 'Rob'], capsys)
