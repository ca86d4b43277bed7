"""experiments/compare.py: same settings for every model, one table."""
import pytest
from conftest import load_experiment


@pytest.fixture(scope='module')
def compare():
    return load_experiment('compare')


def test_trains_each_model_and_tabulates(compare, tiny_encoder, graph_cache, tmp_path):
    out = compare.main(['--models', 'bert-crf', 'ita', '--out', str(tmp_path), '--encoder', tiny_encoder,
                        '--epochs', '1', '--seed', '2', '--cache-dir', str(graph_cache)])
    lines = out.splitlines()
    assert lines[0].split()[:4] == ['model', 'dataset', 'dev', 'F1']
    assert 'test F1 image-text' in lines[0] and 'test F1 text' in lines[0]
    assert lines[1].startswith('bert-crf') and lines[2].startswith('ita') and len(lines) == 3
    assert lines[1].rstrip().endswith('-')  # bert-crf has no views
    assert compare.main(['--runs', str(tmp_path / 'bert-crf'), str(tmp_path / 'ita')]) == out


def test_missing_runs_are_named(compare, tmp_path):
    with pytest.raises(SystemExit, match='No metrics.json'):
        compare.main(['--runs', str(tmp_path)])
