"""experiments/results_table.py: README's results block generated from results/*.json."""
import json

import pytest
from conftest import ROOT, load_experiment

from graphmner.data.conll import Tweet, read_conll, write_conll
from graphmner.data.demo import DEMO_DIR


@pytest.fixture(scope='module')
def results_table():
    return load_experiment('results_table')


def _metrics(seed, f1):
    per_type = {t: {'f1': f1} for t in ('PER', 'LOC', 'ORG', 'MISC')}
    return {'seed': seed, 'encoder': 'enc/MiniLM', 'epochs': 3, 'tweets_per_second': 10.0,
            'train_seconds': 100.0, 'dev': {'f1': 0.5},
            'test': {'precision': f1, 'recall': f1, 'f1': f1, 'per_type': per_type}}


@pytest.fixture
def results(results_table, tmp_path, monkeypatch):
    """Two one-dataset grids written by reproduce.py from hand-made run folders (bert-crf and umgf,
    seeds 1 and 2, on two copies of the demo), a cross-domain and a missing-images file."""
    from graphmner.train import experiment

    reproduce = results_table.reproduce
    monkeypatch.setattr(experiment, 'run', lambda spec: pytest.fail('nothing to train'))
    grids = {'ga': {'bert-crf': (0.70, 0.72), 'umgf': (0.80, 0.82)},
             'gb': {'bert-crf': (0.5, 0.6), 'umgf': (0.55, 0.65)}}
    for grid, f1s in grids.items():
        dataset = tmp_path / f'dom-{grid[1]}'
        dataset.mkdir()
        for split in ('train', 'valid', 'test'):
            write_conll(read_conll(DEMO_DIR / f'{split}.txt'), dataset / f'{split}.txt')
        gold = read_conll(dataset / 'test.txt')
        for method, values in f1s.items():
            for seed, f1 in zip((1, 2), values):
                run = tmp_path / 'runs' / grid / f'{method}-{dataset.name}-seed{seed}'
                run.mkdir(parents=True)
                (run / 'metrics.json').write_text(json.dumps(_metrics(seed, f1)))
                # umgf tags every tweet right, bert-crf no entity at all
                tagged = [t.labels if method == 'umgf' else ['O'] * len(t.words) for t in gold]
                write_conll([Tweet(t.image_id, t.words, labels) for t, labels in zip(gold, tagged)],
                            run / 'test_predictions.txt')
        reproduce.main(['--name', grid, '--models', 'bert-crf', 'umgf', '--datasets', str(dataset),
                        '--seeds', '1', '2', '--runs-dir', str(tmp_path / 'runs'),
                        '--results-dir', str(tmp_path / 'results'), '--resamples', '200'])
    spread = lambda *v: {'mean': sum(v) / len(v), 'std': 0.0, 'values': list(v)}
    (tmp_path / 'results' / 'ga-cross-domain.json').write_text(json.dumps({'rows': [
        {'method': 'umgf', 'source': 'twitter2017', 'target': 'twitter2015', 'seeds': [1],
         'f1': spread(70.25), 'in_domain_f1': spread(82.5), 'target_in_domain_f1': None}]}))
    points = [{'usable_fraction': f, 'f1': v} for f, v in ((1.0, 0.9), (0.5, 0.6), (0.0, 0.25))]
    (tmp_path / 'results' / 'probe-missing-images.json').write_text(json.dumps({'rows': [
        {'method': 'umgf', 'dataset': 'probe (seed0)', 'seed': None, 'points': points, 'note': ''}]}))
    return tmp_path / 'results'


def table_rows(block, first_column):
    return [[c.strip() for c in line.strip('|').split('|')] for line in block.splitlines()
            if line.startswith(f'| {first_column} |')]


def test_block_renders_every_results_file(results_table, results):
    block = results_table.render(results)
    header, umgf = table_rows(block, 'method')[0], table_rows(block, 'umgf')
    assert header == ['method', 'encoder', 'epochs', 'seeds', 'dom-a', 'dom-b', 'paper (dom-a / dom-b)']
    # the two one-dataset grids of one setting share a row; the bootstrap marks come from their json
    assert umgf[0] == ['umgf', 'MiniLM', '3', '1 2', '81.00 ± 1.41 (+2/2)', '60.00 ± 7.07 (+2/2)', '– / –']
    assert table_rows(block, 'bert-crf')[0][4:6] == ['71.00 ± 1.41', '55.00 ± 7.07']
    assert umgf[1] == ['umgf', 'Twitter-2017', 'Twitter-2015', '1', '70.25', '82.50', '']
    assert umgf[2] == ['umgf', 'probe (seed0)', '', '90.00', '60.00', '25.00', '']
    assert '`results/ga.json`, `results/gb.json`' in block and '`results/ga-cross-domain.json`' in block
    # grids run to different seeds still share a row, the seeds given per dataset
    saved = json.loads((results / 'gb.json').read_text())
    saved['rows'][1]['seeds'] = [1]
    (results / 'gb.json').write_text(json.dumps(saved))
    block = results_table.render(results)
    assert table_rows(block, 'umgf')[0][3] == '1 2 / 1' and table_rows(block, 'bert-crf')[0][3] == '1 2'
    del saved['rows'][1]
    (results / 'gb.json').write_text(json.dumps(saved))
    assert table_rows(results_table.render(results), 'umgf')[0][3:6] == ['1 2 / –', '81.00 ± 1.41 (+2/2)', '']


def test_ablations_get_a_before_after_table(results_table, results, tmp_path):
    """An ablation of umgf that tags like bert-crf (no entity): its row beside umgf's, the per-seed
    differences and the mark; no such table without an ablation."""
    assert 'Before / after' not in results_table.render(results)
    dataset = tmp_path / 'dom-a'
    gold = read_conll(dataset / 'test.txt')
    for seed in (1, 2):
        run = tmp_path / 'runs' / 'ga' / f'umgf-plain-{dataset.name}-seed{seed}'
        run.mkdir()
        (run / 'metrics.json').write_text(json.dumps(_metrics(seed, 0.7)))
        write_conll([Tweet(t.image_id, t.words, ['O'] * len(t.words)) for t in gold],
                    run / 'test_predictions.txt')
    results_table.reproduce.main(['--name', 'ga', '--models', '--ablation', 'umgf-plain', 'umgf',
                                  'model.gate=false', '--datasets', str(dataset), '--seeds', '1', '2',
                                  '--runs-dir', str(tmp_path / 'runs'), '--results-dir', str(results),
                                  '--resamples', '200'])
    block = results_table.render(results)
    assert 'Before / after' in block
    assert table_rows(block, 'change')[0][:3] == ['change', 'against', 'dataset']
    assert table_rows(block, 'umgf-plain')[-1] == [
        'umgf-plain', 'umgf', 'dom-a', 'MiniLM', '3', '1 2', '81.00 ± 1.41', '70.00 ± 0.00',
        '-100.00 (0.005), -100.00 (0.005)', '-2/2']


def test_readme_block_is_rewritten_and_checked(results_table, results, tmp_path, capsys):
    readme = tmp_path / 'README.md'
    stale = f'# title\n\nbefore\n{results_table.BEGIN}\n| old | table |\n{results_table.END}\nafter\n'
    readme.write_text(stale)
    argv = ['--readme', str(readme), '--results-dir', str(results)]
    assert results_table.main(argv + ['--check']) == 1 and readme.read_text() == stale
    assert 'run python experiments/results_table.py' in capsys.readouterr().err
    assert results_table.main(argv) == 0
    text = readme.read_text()
    assert text.startswith('# title\n\nbefore\n') and text.endswith(f'{results_table.END}\nafter\n')
    assert results_table.split_readme(text)[1] == results_table.render(results)
    assert results_table.main(argv + ['--check']) == 0
    # a new result makes the README stale again
    (results / 'gb.json').unlink()
    assert results_table.main(argv + ['--check']) == 1


def test_conflicts_and_missing_markers_are_explained(results_table, results, tmp_path, capsys):
    saved = json.loads((results / 'ga.json').read_text())
    (results / 'ga-copy.json').write_text(json.dumps(saved))
    with pytest.raises(results_table.BlockError,
                       match=r'bert-crf on \S*dom-a \(MiniLM, 3 epochs\) is in both ga-copy.json and '
                             r'ga.json'):
        results_table.render(results)
    readme = tmp_path / 'README.md'
    readme.write_text('# no markers\n')
    assert results_table.main(['--readme', str(readme), '--results-dir', str(results)]) == 2
    assert 'README needs one <!-- results:begin --> line' in capsys.readouterr().err


def test_readme_results_block_is_the_generated_one(results_table):
    """The repository's README against the repository's results/: stale numbers fail here."""
    readme = ROOT / 'README.md'
    if results_table.BEGIN not in readme.read_text():
        pytest.skip('README.md has no results markers yet: the block is not generated')
    head, block, tail = results_table.split_readme(readme.read_text())
    assert block == results_table.render(ROOT / 'results'), 'run python experiments/results_table.py'
