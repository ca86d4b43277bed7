"""experiments/run.py end to end on the demo data (tiny random encoder)."""
import json

import pytest
from conftest import load_experiment


@pytest.fixture(scope='module')
def run():
    return load_experiment('run')


def test_demo_run_writes_metrics_checkpoint_and_plot(run, tiny_encoder, graph_cache, tmp_path):
    argv = ['--model', 'bert-crf', '--encoder', tiny_encoder, '--epochs', '2', '--seed', '3',
            '--out', str(tmp_path), '--set', f'data.cache_dir={graph_cache}']
    metrics = run.main(argv)
    saved = json.loads((tmp_path / 'metrics.json').read_text())
    assert saved['test'] == metrics['test']
    for key in ('model', 'dataset', 'encoder', 'epochs', 'seed', 'dev', 'test', 'train_seconds',
                'tweets_per_second'):
        assert key in saved
    assert saved['model'] == 'bert-crf' and saved['dataset'] == 'demo' and saved['epochs'] == 2
    assert saved['seed'] == 3 and saved['tweets_per_second'] > 0
    assert {'precision', 'recall', 'f1', 'per_type'} <= set(saved['test'])
    for name in ('best.pt', 'last.pt', 'log.txt', 'training.png'):
        assert (tmp_path / name).exists()
    # --resume after a finished run retrains nothing and reports the same scores.
    again = run.main(argv + ['--resume'])
    assert again['test'] == metrics['test'] and len(again['history']) == 2


def test_bad_settings_are_explained(run, tmp_path):
    with pytest.raises(SystemExit, match='SECTION.KEY=VALUE'):
        run.main(['--model', 'bert-crf', '--set', 'dropout=0.3', '--out', str(tmp_path)])
    with pytest.raises(SystemExit, match='No config'):
        run.main(['--model', 'bert-crf', '--config', str(tmp_path / 'none.yaml'), '--out', str(tmp_path)])
