"""experiments/reproduce.py: the grid, its resume, its table; experiments/papers.yaml."""
import json
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, load_experiment

from graphmner.cli import MODEL_NAMES
from graphmner.data.conll import Tweet, read_conll, write_conll
from graphmner.data.demo import DEMO_DIR
from graphmner.metrics import span_scores


@pytest.fixture(scope='module')
def reproduce():
    return load_experiment('reproduce')


def test_papers_file_parses_and_every_entry_names_its_source_table():
    entries = yaml.safe_load((ROOT / 'experiments' / 'papers.yaml').read_text())
    assert len(entries) >= 10
    for e in entries:
        assert e['method'] in MODEL_NAMES and e['dataset'] in ('twitter2015', 'twitter2017'), e
        assert 'Table' in e['source'] or 'table' in e['source'], e
        assert e['encoder'] and 50 < e['f1'] < 100, e
        if e['precision'] is not None:  # a typo in P, R or F1 breaks F1 = 2PR / (P + R)
            p, r = e['precision'], e['recall']
            assert 2 * p * r / (p + r) == pytest.approx(e['f1'], abs=0.05), e
    assert {e['method'] for e in entries} == set(MODEL_NAMES)


def test_dry_run_prints_every_run_and_its_typed_settings(reproduce, tmp_path, capsys):
    reproduce.main(['--name', 'g', '--models', 'bert-crf', 'umgf', '--seeds', '1', '2', '--runs-dir',
                    str(tmp_path), '--ablation', 'umgf-no-gate', 'umgf', 'model.gate=false', '--epochs', '2',
                    '--dry-run'])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith('to run')]
    assert [line.split('/')[-1] for line in lines] == [
        'bert-crf-demo-seed1', 'bert-crf-demo-seed2', 'umgf-demo-seed1', 'umgf-demo-seed2',
        'umgf-no-gate-demo-seed1', 'umgf-no-gate-demo-seed2']
    settings = [json.loads(line.split('settings: ')[1]) for line in out.splitlines() if 'settings: ' in line]
    assert [s['train']['seed'] for s in settings] == [1, 2, 1, 2, 1, 2]
    assert all(s['train']['epochs'] == 2 for s in settings)
    assert [s['model']['gate'] for s in settings[2:]] == [True, True, False, False]  # typed: every field
    assert not (tmp_path / 'g').exists()  # nothing trained, nothing written


def test_readme_gpu_command_dry_runs(reproduce, tmp_path, capsys):
    """The papers' setting documented in the README (bert-base, paper epochs, images) is a valid grid."""
    lines = (ROOT / 'README.md').read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if '--name papers-gpu' in line)
    end = next(i for i in range(start, len(lines)) if not lines[i].endswith('\\'))
    argv = shlex.split(' '.join(line.rstrip('\\') for line in lines[start:end + 1]))[2:]
    reproduce.main(argv + ['--runs-dir', str(tmp_path), '--dry-run'])
    out = capsys.readouterr().out
    settings = [json.loads(line.split('settings: ')[1]) for line in out.splitlines() if 'settings: ' in line]
    assert len(settings) == 5 * 2 * 3
    # each config's own encoder and epochs: the papers'
    assert {s['model']['encoder'] for s in settings} == {'bert-base-cased', 'bert-base-uncased'}
    assert {s['train']['epochs'] for s in settings} == {22, 23, 24, 30, 50}
    assert all(s['data']['vision_weights'] == 'imagenet' for s in settings)
    assert 'device=cuda' in out and 'image_root=data/twitter2017_images' in out
    assert 'captions=../shared/data/captions/blip2_twitter2015.txt' in out


def _metrics(seed, f1, dev_f1=0.5, encoder='tiny', epochs=1):
    per_type = {t: {'precision': f1, 'recall': f1, 'f1': f1 / (1 + i), 'support': 1, 'predicted': 1}
                for i, t in enumerate(('PER', 'LOC', 'ORG', 'MISC'))}
    return {'seed': seed, 'encoder': encoder, 'epochs': epochs, 'tweets_per_second': 10.0 * seed,
            'train_seconds': 100.0 * seed, 'dev': {'f1': dev_f1},
            'test': {'precision': f1, 'recall': f1, 'f1': f1, 'per_type': per_type}}


def test_a_half_finished_grid_trains_only_the_missing_run(reproduce, tiny_encoder, graph_cache, tmp_path,
                                                          monkeypatch, capsys):
    done = tmp_path / 'runs' / 'half' / 'bert-crf-demo-seed1'
    done.mkdir(parents=True)
    (done / 'metrics.json').write_text(json.dumps(_metrics(1, 0.25)))
    trained = []
    from graphmner.train import experiment
    real_run = experiment.run

    def spy(spec):
        trained.append(str(spec.out))
        return real_run(spec)

    monkeypatch.setattr(experiment, 'run', spy)
    argv = ['--name', 'half', '--models', 'bert-crf', '--seeds', '1', '2', '--epochs', '1',
            '--encoder', tiny_encoder, '--cache-dir', str(graph_cache),
            '--runs-dir', str(tmp_path / 'runs'), '--results-dir', str(tmp_path / 'results')]
    fresh = tmp_path / 'runs' / 'half' / 'bert-crf-demo-seed2'
    # --table-only: the table of what is finished, the missing run named, nothing trained
    rows = reproduce.main(argv + ['--table-only'])
    assert trained == [] and rows[0]['seeds'] == [1] and rows[0]['f1']['values'] == [25.0]
    assert f'not finished, left out: {reproduce.shown_path(fresh)}' in capsys.readouterr().out
    rows = reproduce.main(argv)
    assert trained == [str(fresh)]
    metrics = json.loads((fresh / 'metrics.json').read_text())
    # the saved predictions are the test scores' own labels, in the demo's test order
    gold = read_conll(DEMO_DIR / 'test.txt')
    saved = read_conll(fresh / 'test_predictions.txt')
    assert [t.words for t in saved] == [t.words for t in gold]
    assert span_scores([t.labels for t in gold], [t.labels for t in saved])['f1'] == metrics['test']['f1']
    assert rows[0]['seeds'] == [1, 2]
    assert rows[0]['f1']['values'] == [25.0, 100 * metrics['test']['f1']]
    assert (tmp_path / 'results' / 'half.md').exists()


def test_a_slice_command_adds_its_runs_to_the_grids_table(reproduce, tmp_path, capsys):
    """A command naming one model and seed (how a grid is trained a piece at a time) rewrites the table of
    the whole grid results/<name>.json was written from, not a table of its slice alone."""
    runs = tmp_path / 'runs' / 'g'
    for method, seed, f1 in (('bert-crf', 1, 0.5), ('bert-crf', 2, 0.6), ('umgf', 1, 0.7), ('umgf', 2, 0.8),
                             ('umgf-no-gate', 1, 0.4)):
        (runs / f'{method}-demo-seed{seed}').mkdir(parents=True)
        (runs / f'{method}-demo-seed{seed}' / 'metrics.json').write_text(json.dumps(_metrics(seed, f1)))
    common = ['--name', 'g', '--epochs', '1', '--encoder', 'tiny', '--table-only', '--runs-dir',
              str(tmp_path / 'runs'), '--results-dir', str(tmp_path / 'results')]
    whole = ['--models', 'bert-crf', 'umgf', '--ablation', 'umgf-no-gate', 'umgf', 'model.gate=false',
             '--seeds', '1', '2']
    rows = reproduce.main(common + whole)
    assert [(r['method'], r['seeds']) for r in rows] == [('bert-crf', [1, 2]), ('umgf', [1, 2]),
                                                        ('umgf-no-gate', [1])]
    capsys.readouterr()
    slice_rows = reproduce.main(common + ['--models', 'umgf', '--seeds', '2'])
    assert slice_rows == rows
    kept = "g.json's models bert-crf; ablations umgf-no-gate; seeds 1 (--replace-table"
    assert kept in capsys.readouterr().out
    saved = json.loads((tmp_path / 'results' / 'g.json').read_text())
    assert saved['grid']['models'] == ['bert-crf', 'umgf'] and saved['grid']['seeds'] == [1, 2]
    assert saved['grid']['ablation'] == [['umgf-no-gate', 'umgf', 'model.gate=false']]
    # --replace-table: the slice's own table
    rows = reproduce.main(common + ['--models', 'umgf', '--seeds', '2', '--replace-table'])
    assert [(r['method'], r['seeds']) for r in rows] == [('umgf', [2])]
    # runs trained for other epochs or with another encoder cannot join the grid: one line, exit 2
    reproduce.main(common + whole)
    for other, given in ((['--epochs', '2'], '--epochs 1, this command gives --epochs 2'),
                         (['--encoder', 'other'], '--encoder tiny, this command gives --encoder other')):
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            reproduce.main(common + whole + other)  # argparse: the last --epochs / --encoder wins
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.count('\n') == 1, err
        assert f"g.json's runs were trained with {given}: give it another --name" in err


def _hand_made_runs(runs, shared_data, encoder):
    """Seeds 1 and 2 of bert-crf (F1 0.70, 0.72; every other test tweet tagged all O) and of umgf (0.80,
    0.82; the gold labels) on Twitter-2017, as run folders under ``runs``. Returns the gold tweets and
    bert-crf's."""
    gold = read_conll(shared_data / 'twitter2017' / 'test.txt')
    worse = [Tweet(t.image_id, t.words, ['O'] * len(t.words) if i % 2 else t.labels)
             for i, t in enumerate(gold)]
    for method, f1s, predictions in (('bert-crf', (0.70, 0.72), worse), ('umgf', (0.80, 0.82), gold)):
        for seed, f1 in zip((1, 2), f1s):
            folder = runs / f'{method}-twitter2017-seed{seed}'
            folder.mkdir(parents=True)
            (folder / 'metrics.json').write_text(json.dumps(_metrics(seed, f1, encoder=encoder, epochs=3)))
            write_conll(predictions, folder / 'test_predictions.txt')
    return gold, worse


def test_table_from_hand_made_run_folders(reproduce, shared_data, tmp_path, monkeypatch):
    runs = tmp_path / 'runs' / 'hand'
    gold, worse = _hand_made_runs(runs, shared_data, 'enc/MiniLM')

    from graphmner.train import experiment

    def no_training(spec):
        raise AssertionError('a finished grid trains nothing')

    monkeypatch.setattr(experiment, 'run', no_training)
    reproduce.main(['--name', 'hand', '--models', 'bert-crf', 'umgf', '--datasets', 'twitter2017',
                    '--seeds', '1', '2', '--data-root', str(shared_data),
                    '--runs-dir', str(tmp_path / 'runs'), '--results-dir', str(tmp_path / 'results'),
                    '--resamples', '200'])
    table = (tmp_path / 'results' / 'hand.md').read_text()
    rows = {line.split(' | ')[0][2:]: line.split(' | ') for line in table.splitlines()
            if line.startswith(('| bert-crf', '| umgf'))}
    header = [h.strip() for h in table.splitlines()[6].strip('|').split('|')]
    assert table.splitlines()[7] == '|' + '---|' * len(header)  # a table markdown renders
    umgf = dict(zip(header, (c.strip(' |') for c in rows['umgf'])))
    bert = dict(zip(header, (c.strip(' |') for c in rows['bert-crf'])))
    assert umgf['test F1'] == '81.00 ± 1.41' and bert['test F1'] == '71.00 ± 1.41'
    assert umgf['PER'] == '81.00 ± 1.41' and umgf['MISC'] == '20.25 ± 0.35'
    assert umgf['dev F1'] == '50.00 ± 0.00'
    assert umgf['tweets/s'] == '15.0 ± 7.1' and umgf['train s'] == '150 ± 71'
    assert umgf['encoder'] == 'MiniLM' and umgf['epochs'] == '3' and umgf['seeds'] == '1 2'
    assert umgf['vs bert-crf'] == '+2/2' and bert['vs bert-crf'] == ''
    assert umgf['paper F1'].startswith('85.51 [') and 'UMGF paper (umgf_003) Table 2' in table
    saved = json.loads((tmp_path / 'results' / 'hand.json').read_text())
    tests = saved['rows'][1]['vs_bert_crf']
    plain = span_scores([t.labels for t in gold], [t.labels for t in gold])['f1'] - span_scores(
        [t.labels for t in gold], [t.labels for t in worse])['f1']
    assert [t['seed'] for t in tests] == [1, 2] and tests[0]['difference'] == pytest.approx(plain)
    # run folders named relative to the repository: a committed table names no folder of this machine
    shown = saved['rows'][1]['runs']
    assert not any(Path(r).is_absolute() for r in shown)
    assert [(ROOT / r).resolve() for r in shown] == [(runs / f'umgf-twitter2017-seed{s}').resolve()
                                                     for s in (1, 2)]
    assert (tmp_path / 'results' / 'hand.png').stat().st_size > 1000


def test_an_ablation_is_tested_against_its_models_row(reproduce, shared_data, tmp_path):
    """Before / after: an ablation's "vs default" bootstraps compare it with its model's row at each seed
    (not with bert-crf), the model's own rows get none, and a table grown elsewhere keeps them."""
    runs = tmp_path / 'runs' / 'switch'
    gold, worse = _hand_made_runs(runs, shared_data, 'enc')
    for seed in (1, 2):  # umgf with a switch that tags every other tweet all O: bert-crf's labels
        folder = runs / f'umgf-switch-twitter2017-seed{seed}'
        folder.mkdir()
        (folder / 'metrics.json').write_text(json.dumps(_metrics(seed, 0.7, encoder='enc', epochs=3)))
        write_conll(worse, folder / 'test_predictions.txt')
    common = ['--name', 'switch', '--datasets', 'twitter2017', '--data-root', str(shared_data), '--encoder',
              'enc', '--epochs', '3', '--table-only', '--resamples', '200', '--seeds', '1', '2',
              '--runs-dir', str(tmp_path / 'runs'), '--results-dir', str(tmp_path / 'results')]
    ablation = ['--ablation', 'umgf-switch', 'umgf', 'model.gate=false']
    rows = {row['method']: row
            for row in reproduce.main(common + ['--models', 'bert-crf', 'umgf', *ablation])}
    plain = span_scores([t.labels for t in gold], [t.labels for t in worse])['f1'] - span_scores(
        [t.labels for t in gold], [t.labels for t in gold])['f1']
    switch = rows['umgf-switch']['vs_default']
    assert plain < 0 and [t['seed'] for t in switch] == [1, 2]
    assert switch[0]['difference'] == pytest.approx(plain)
    assert rows['umgf-switch']['vs_bert_crf'][0]['difference'] == pytest.approx(0)  # the same labels
    assert rows['umgf']['vs_default'] == [] and rows['bert-crf']['vs_default'] == []
    table = (tmp_path / 'results' / 'switch.md').read_text()
    line = next(line for line in table.splitlines() if line.startswith('| umgf-switch'))
    assert line.split(' | ')[-3:-1] == ['0/2', '-2/2']  # vs bert-crf, vs default
    assert f'- umgf-switch against umgf, twitter2017: seed 1 {100 * plain:+.2f} (p 0.005)' in table  # 1/201
    # the folders gone: the table keeps the ablation's bootstraps against its model
    shutil.rmtree(runs)
    kept = {row['method']: row for row in reproduce.main(common + ['--models', *ablation])}
    assert kept['umgf-switch']['vs_default'] == switch


def _domain(folder, test, keep=lambda tweet: True):
    """A folder dataset: the demo's train and valid splits (filtered by ``keep``) and ``test``. The tiny
    encoder only finds entities in tweets it was trained on, so the tests are training tweets."""
    folder.mkdir()
    demo = {split: read_conll(DEMO_DIR / f'{split}.txt') for split in ('train', 'valid')}
    for split, tweets in (('train', demo['train']), ('valid', demo['valid']), ('test', test)):
        write_conll([t for t in tweets if keep(t)], folder / f'{split}.txt')
    return str(folder)


def test_cross_domain_scores_each_run_on_the_other_test_split(reproduce, tiny_encoder, graph_cache, tmp_path,
                                                               capsys):
    from graphmner.predict import Tagger

    train = read_conll(DEMO_DIR / 'train.txt')
    a, b = _domain(tmp_path / 'dom-a', train[:8]), _domain(tmp_path / 'dom-b', train[8:16])
    grid = ['--name', 'cd', '--models', 'bert-crf', '--datasets', a, b, '--seeds', '1',
            '--encoder', tiny_encoder, '--cache-dir', str(graph_cache), '--runs-dir', str(tmp_path / 'runs'),
            '--results-dir', str(tmp_path / 'results')]
    reproduce.main(grid + ['--epochs', '2', '--batch-size', '4', '--set', 'train.encoder_lr=0.01',
                           '--set', 'train.head_lr=0.01', '--set', 'model.constrained_decoding=true',
                           '--set', 'model.repair_targets=true'])
    rows = reproduce.main(grid + ['--cross-domain', a, b])
    assert [(row['source'], row['target']) for row in rows] == [(a, b), (b, a)]
    for row in rows:
        source, target = (f"{tmp_path / 'runs' / 'cd'}/bert-crf-{Path(d).name}-seed1" for d in
                          (row['source'], row['target']))
        # the reference: the checkpoint tags the target's test words through `graphmner predict`'s path
        gold = read_conll(Path(row['target']) / 'test.txt')
        tagged = Tagger.load(Path(source) / 'best.pt', cache_dir=graph_cache).predict([t.words for t in gold])
        expected = span_scores([t.labels for t in gold], [p.labels for p in tagged])['f1']
        assert row['f1']['values'] == [pytest.approx(100 * expected)]
        assert not Path(row['runs'][0]).is_absolute()  # named relative to the repository
        assert [(ROOT / r).resolve() for r in row['runs']] == [Path(source).resolve()]
        in_domain = json.loads((Path(source) / 'metrics.json').read_text())['test']['f1']
        on_target = json.loads((Path(target) / 'metrics.json').read_text())['test']['f1']
        assert row['in_domain_f1']['values'] == [100 * in_domain]
        assert row['target_in_domain_f1']['values'] == [100 * on_target]
    assert any(row['f1']['mean'] > 0 for row in rows)  # trained enough to find entities
    table = (tmp_path / 'results' / 'cd-cross-domain.md').read_text()
    line = next(line for line in table.splitlines() if line.startswith('| bert-crf | dom-a | dom-b |'))
    cells = [c.strip() for c in line.strip('|').split('|')]
    assert cells[4] == f"{rows[0]['f1']['mean']:.2f}"  # one seed: no ± of a lone value
    assert cells[8] == f"{rows[0]['f1']['mean'] - rows[0]['in_domain_f1']['mean']:+.2f}"
    assert 'the same labels: O B-PER I-PER' in table
    saved = json.loads((tmp_path / 'results' / 'cd-cross-domain.json').read_text())
    assert saved['rows'][1]['per_seed'][0]['test']['f1'] == pytest.approx(rows[1]['f1']['mean'] / 100)

    # one dataset a grid: the runs trained on the target come from --target-grid
    shutil.copytree(tmp_path / 'runs' / 'cd' / f'bert-crf-{Path(a).name}-seed1',
                    tmp_path / 'runs' / 'cd-a' / f'bert-crf-{Path(a).name}-seed1')
    only_a = ['--name', 'cd-a', '--models', 'bert-crf', '--datasets', a, *grid[grid.index('--seeds'):],
              '--cross-domain', b]
    (alone,) = reproduce.main(only_a)
    assert alone['target_in_domain_f1'] is None
    (paired,) = reproduce.main(only_a + ['--target-grid', 'cd'])
    assert paired['f1'] == rows[0]['f1'] and paired['target_in_domain_f1'] == rows[0]['target_in_domain_f1']
    assert 'seeds 1, from runs/cd/ (same encoder and epochs)' in (
        tmp_path / 'results' / 'cd-a-cross-domain.md').read_text()
    # ... and must share this grid's encoder, epochs and inputs (config settings may differ per dataset)
    target_run = tmp_path / 'runs' / 'cd' / f'bert-crf-{Path(b).name}-seed1' / 'metrics.json'
    metrics = json.loads(target_run.read_text())
    metrics['settings']['train']['head_lr'] *= 2
    target_run.write_text(json.dumps(metrics))
    assert reproduce.main(only_a + ['--target-grid', 'cd'])[0]['target_in_domain_f1'] is not None
    metrics['epochs'] += 1
    metrics['captions'] = 'captions.txt'
    target_run.write_text(json.dumps(metrics))
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        reproduce.main(only_a + ['--target-grid', 'cd'])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('reproduce.py: ') and err.count('\n') == 1, err
    assert 'was trained with another epochs, captions (given or not) than ' in err

    # a target whose label set is not the runs' one stops the harness in one line, exit status 2
    per_only = _domain(tmp_path / 'per-only', train, keep=lambda t: {x[2:] for x in t.labels} <= {'', 'PER'})
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        reproduce.main(grid + ['--cross-domain', per_only])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('reproduce.py: ') and err.count('\n') == 1, err
    assert f'but {per_only} tags O B-PER I-PER: cross-domain scores need one label set' in err


def test_the_plot_names_the_paper_of_each_cross(reproduce, tmp_path, monkeypatch):
    """bert-crf has an F1 from the UMGF paper and one from the ITA paper: two markers, two legend names."""
    import matplotlib.pyplot as plt

    papers = [p for p in yaml.safe_load((ROOT / 'experiments' / 'papers.yaml').read_text())
              if p['method'] == 'bert-crf' and p['dataset'] == 'twitter2017']
    assert len(papers) == 2
    row = {'dataset': 'twitter2017', 'method': 'bert-crf', 'papers': papers,
           'f1': {'values': [80.0, 81.0], 'mean': 80.5, 'std': 0.7}}
    figures = []
    monkeypatch.setattr(plt, 'close', figures.append)
    reproduce.plot([row], tmp_path / 'plot.png')
    [ax] = figures[0].axes
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ['UMGF paper', 'ITA paper']
    # each paper's F1 drawn at the method, in a colour of its own
    points = {tuple(c.get_offsets()[0]): c.get_facecolor().tolist() for c in ax.collections
              if len(c.get_offsets()) == 1}
    first, second = ((0.0, p['f1']) for p in papers)
    assert first in points and second in points and points[first] != points[second]


def test_a_table_grown_on_another_machine_keeps_the_rows_it_cannot_retrain(reproduce, shared_data, tmp_path,
                                                                          capsys):
    """Run folders stay on the machine that trained them: a table rewritten where some are missing keeps
    those seeds as results/<name>.json recorded them (scores and bootstraps), and says so."""
    runs = tmp_path / 'runs' / 'moved'
    gold, _ = _hand_made_runs(runs, shared_data, 'enc')
    common = ['--name', 'moved', '--datasets', 'twitter2017', '--data-root', str(shared_data), '--encoder',
              'enc', '--epochs', '3', '--table-only', '--resamples', '200',
              '--runs-dir', str(tmp_path / 'runs'), '--results-dir', str(tmp_path / 'results')]
    before = reproduce.main(common + ['--models', 'bert-crf', 'umgf', '--seeds', '1', '2'])
    assert [r['kept_from_earlier_table'] for r in before] == [[], []]
    stored = tmp_path / 'results' / 'moved-predictions'
    assert sorted(p.name for p in stored.iterdir()) == [f'{m}-twitter2017-seed{s}.txt'
                                                        for m in ('bert-crf', 'umgf') for s in (1, 2)]
    first_tweet = stored.joinpath('umgf-twitter2017-seed1.txt').read_text().splitlines()[0]
    assert first_tweet == ' '.join(gold[0].labels)
    # a new machine: every folder is gone but bert-crf seed 1's; an ablation is trained there
    for gone in ('umgf-twitter2017-seed1', 'umgf-twitter2017-seed2', 'bert-crf-twitter2017-seed2'):
        shutil.rmtree(runs / gone)
    folder = runs / 'umgf-aux-twitter2017-seed1'
    folder.mkdir()
    (folder / 'metrics.json').write_text(json.dumps(_metrics(1, 0.9, encoder='enc', epochs=3)))
    write_conll(gold, folder / 'test_predictions.txt')
    capsys.readouterr()
    after = reproduce.main(common + ['--models', '--ablation', 'umgf-aux', 'umgf',
                                     'model.aux_sources=[caption]', '--seeds', '1'])
    by_method = {row['method']: row for row in after}
    for method in ('bert-crf', 'umgf'):
        old = next(row for row in before if row['method'] == method)
        assert {k: v for k, v in by_method[method].items() if k != 'kept_from_earlier_table'} == {
            k: v for k, v in old.items() if k != 'kept_from_earlier_table'}
    assert by_method['bert-crf']['kept_from_earlier_table'] == [2]
    assert by_method['umgf']['kept_from_earlier_table'] == [1, 2]
    assert [t['seed'] for t in by_method['umgf']['vs_bert_crf']] == [1, 2]
    kept_line = next(line for line in capsys.readouterr().out.splitlines()
                     if line.startswith('kept from the earlier table, not trained here: '))
    assert 'umgf-twitter2017-seed1' in kept_line and 'bert-crf-twitter2017-seed2' in kept_line
    table = (tmp_path / 'results' / 'moved.md').read_text()
    assert '- umgf twitter2017 seeds 1 2' in table and '- bert-crf twitter2017 seeds 2' in table
    # the new row is tested against the bert-crf run that is still here, at its own seed
    aux = by_method['umgf-aux']
    assert aux['seeds'] == [1] and aux['kept_from_earlier_table'] == []
    assert aux['vs_bert_crf'] == by_method['umgf']['vs_bert_crf'][:1]  # the same labels as umgf seed 1
    # with bert-crf's folder gone too, its stored labels still test the new row
    shutil.rmtree(runs / 'bert-crf-twitter2017-seed1')
    assert reproduce.main(common + ['--models', '--seeds', '1'])[2]['vs_bert_crf'] == aux['vs_bert_crf']
    # stored labels only stand in for a run the table keeps
    (stored / 'bert-crf-twitter2017-seed1.txt').unlink()
    assert reproduce.main(common + ['--models', '--seeds', '1'])[2]['vs_bert_crf'] == []
    # a table recorded for another encoder lends none of its seeds
    rows = reproduce.main(common + ['--encoder', 'other', '--replace-table', '--models', 'bert-crf',
                                    '--seeds', '1', '2'])
    assert rows == []
