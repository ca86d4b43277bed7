"""experiments/missing_images.py: F1 with all, half and none of the test images usable.

The checkpoints are untrained tiny models (random weights still read the image: UMGF's labels move
with it); the reference rebuilds each dropped tweet through the builder without its photo."""
import json

import pytest
import torch
from conftest import load_experiment
from torch_geometric.loader import DataLoader

from graphmner import models
from graphmner.data.conll import read_conll
from graphmner.graph import GraphBuilder, GraphOptions, visual_width
from graphmner.graph.data_config import DataConfig

SIZES = {'train': 4, 'dev': 4, 'test': 24}


@pytest.fixture(scope='module')
def missing_images():
    return load_experiment('missing_images')


def untrained(name, encoder, graphs, seed):
    torch.manual_seed(seed)
    if name == 'bert-crf':
        return models.build(name, encoder=encoder)
    return models.build(name, encoder=encoder, visual_dim=visual_width(graphs), d_model=32, heads=2, ffn=32)


def test_probe_curve_equals_builder_graphs_without_the_dropped_photos(missing_images, tiny_encoder, tmp_path):
    probe = missing_images.probe_visual
    cache = tmp_path / 'cache'
    folder = probe.build_probe(cache / 'probe' / 'seed0', SIZES, seed=0)
    test = probe.probe_graphs(folder, probe.PROBE_OPTIONS, cache / 'features', ('test',))['test']
    runs = tmp_path / 'probe-runs'
    trained = {'bert-crf': 0.25, 'umgf': 0.5}
    for seed, name in enumerate(trained):
        (runs / name).mkdir(parents=True)
        untrained(name, tiny_encoder, test, seed).save(runs / name / 'best.pt')
    (runs / 'results.json').write_text(json.dumps(
        {'sizes': SIZES, 'models': [{'model': m, 'test_f1': f1} for m, f1 in trained.items()]}))

    rows = missing_images.main(['--name', 'p', '--probe', str(runs), '--cache-dir', str(cache),
                                '--results-dir', str(tmp_path / 'results'), '--seed', '3'])
    assert [row['method'] for row in rows] == ['bert-crf', 'umgf']
    tweets = read_conll(folder / 'test.txt')
    builder = GraphBuilder(GraphOptions(**probe.PROBE_OPTIONS), feature_cache=cache / 'features',
                           progress=False)
    for row in rows:
        model = models.load(runs / row['method'] / 'best.pt')
        for point in row['points']:
            drop = missing_images.exact_drop(test, point['usable_fraction'], seed=3)
            dropped = [drop.drops(g) for g in test]
            assert sum(dropped) == 24 - round(24 * point['usable_fraction'])
            paths = [None if d else folder / 'images' / f'{t.image_id}.jpg' for t, d in zip(tweets, dropped)]
            graphs, report = builder(tweets, image_paths=paths)
            assert point['tweets_with_image'] == len(tweets) - report['images_missing'] == len(tweets) - sum(
                dropped)
            transform = model.graph_transform()
            expected = model.evaluate(DataLoader([transform(g) for g in graphs], batch_size=64))
            assert {k: point[k] for k in ('f1', 'precision', 'recall', 'predicted')} == {
                k: expected[k] for k in ('f1', 'precision', 'recall', 'predicted')}
    bert, umgf = rows
    assert [p['tweets_with_image'] for p in umgf['points']] == [24, 12, 0]  # about half at 0.5
    assert len({(p['f1'], p['predicted']) for p in bert['points']}) == 1 and bert['note'] == 'reads no image'
    assert len({(p['f1'], p['predicted']) for p in umgf['points']}) > 1 and umgf['note'] == ''
    table = (tmp_path / 'results' / 'p-missing-images.md').read_text()
    line = next(line for line in table.splitlines() if line.startswith('| umgf |'))
    cells = [c.strip() for c in line.strip('|').split('|')]
    f1 = [100 * p['f1'] for p in umgf['points']]
    assert cells[3:6] == [f'{v:.2f}' for v in f1] and cells[6] == f'{f1[0] - f1[2]:+.2f}'
    assert cells[7] == '24 / 12 / 0 of 24' and cells[8] == '50.00'
    assert (tmp_path / 'results' / 'p-missing-images.png').stat().st_size > 1000


def test_test_set_without_images_is_scored_once_and_flat(missing_images, tiny_encoder, graph_cache, tmp_path,
                                                         monkeypatch):
    from graphmner.data.datasets import dataset_labels
    from graphmner.data.demo import DEMO_DIR, DEMO_OPTIONS

    run = tmp_path / 'grid' / 'umgf-no-gate-demo-seed2'
    run.mkdir(parents=True)
    options = GraphOptions(**DEMO_OPTIONS)
    model = models.build('umgf', dataset_labels(str(DEMO_DIR)), encoder=tiny_encoder, d_model=32, heads=2,
                         ffn=32, visual_dim=GraphBuilder(options).widths().x['object'])
    model.data_config = DataConfig(options=options)
    model.save(run / 'best.pt')
    (run / 'metrics.json').write_text(json.dumps({
        'model': 'umgf', 'dataset': str(DEMO_DIR), 'seed': 2, 'data_root': None, 'image_root': None,
        'captions': None, 'test': {'f1': 0.125}, 'settings': {'train': {'scheme': 'conlleval'}}}))
    scored = []
    real_score = missing_images.experiment.evaluate_graphs
    monkeypatch.setattr(missing_images.experiment, 'evaluate_graphs',
                        lambda *a, **k: scored.append(a) or real_score(*a, **k))
    rows = missing_images.main(['--name', 'g', '--grid', str(tmp_path / 'grid'), '--cache-dir',
                                str(graph_cache), '--results-dir', str(tmp_path / 'results')])
    assert len(scored) == 1  # one scoring for the three fractions
    (row,) = rows
    assert row['method'] == 'umgf-no-gate' and row['seed'] == 2 and row['note'] == missing_images.FLAT
    assert [p['tweets_with_image'] for p in row['points']] == [0, 0, 0]
    assert len({p['f1'] for p in row['points']}) == 1
    assert 'flat by construction' in (tmp_path / 'results' / 'g-missing-images.md').read_text()


def test_probe_runs_of_another_probe_are_refused(missing_images, tmp_path):
    (tmp_path / 'results.json').write_text(json.dumps({'probe': '/elsewhere/probe/seed5', 'sizes': SIZES}))
    with pytest.raises(SystemExit, match='trained on the probe /elsewhere/probe/seed5, not seed0: give its '
                                         '--data-seed'):
        missing_images.main(['--name', 'p', '--probe', str(tmp_path), '--cache-dir', str(tmp_path)])
