"""experiments/run.py end to end on the demo data (tiny random encoder)."""
import json

import pytest
from conftest import load_experiment

from graphmner.data.conll import read_conll, write_conll
from graphmner.data.demo import DEMO_DIR


@pytest.fixture(scope='module')
def run():
    return load_experiment('run')


def test_demo_run_writes_metrics_checkpoint_and_plot(run, tiny_encoder, graph_cache, tmp_path, capsys):
    argv = ['--model', 'bert-crf', '--encoder', tiny_encoder, '--epochs', '2', '--seed', '3',
            '--out', str(tmp_path), '--cache-dir', str(graph_cache)]
    metrics = run.main(argv)
    # The log says only what the model reads (bert-crf: no photo, no aux words), and the dev and
    # test tables are printed once, at the end (the log has one line of each).
    out, log = capsys.readouterr().out, (tmp_path / 'log.txt').read_text()
    assert 'train: 24 tweets\n' in log and 'usable image' not in log and 'aux words' not in log
    assert out.count('overall') == 2 and 'overall' not in log
    for split in ('dev', 'test'):
        p, r, f1 = (100 * metrics[split][key] for key in ('precision', 'recall', 'f1'))
        assert f'{split}, best dev checkpoint: P {p:.2f} R {r:.2f} F1 {f1:.2f}\n' in log
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
    # --resume after a finished run retrains nothing and reports the same scores (the same
    # seed would give them again: what shows that nothing trained is the untouched best.pt,
    # the restored training time and the log).
    best = (tmp_path / 'best.pt').stat()
    again = run.main(argv + ['--resume'])
    assert again['test'] == metrics['test'] and again['history'] == metrics['history']
    assert again['train_seconds'] == metrics['train_seconds']
    assert (tmp_path / 'best.pt').stat().st_mtime_ns == best.st_mtime_ns
    assert 'Resumed from' in (tmp_path / 'log.txt').read_text()


@pytest.mark.parametrize('argv, message', [
    (['--set', 'dropout=0.3'], 'SECTION.KEY=VALUE'),
    (['--set', 'train.head_lr=abc'], "'train.head_lr' must be a number, got 'abc'"),
    (['--set', 'train.nonsense=3'], "unknown setting 'train.nonsense'; valid: train.batch_size"),
    (['--set', 'model.tag_scheme=[1]'], "'model.tag_scheme' must be a string"),
    (['--config', 'none.yaml'], "no config 'none.yaml'"),
])
def test_bad_settings_are_one_line_and_exit_2(run, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        run.main(['--model', 'bert-crf', '--out', str(tmp_path / 'run'), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count('\n') == 1, err
    assert not (tmp_path / 'run').exists()  # nothing written for a run that never started


def test_set_values_are_typed_by_the_config(run, tmp_path):
    args = run.parse_args(['--model', 'umgf', '--set', 'train.head_lr=1e-3', '--set', 'model.heads=2',
                           '--set', 'data.vision_weights=none', '--set', 'model.gate=false',
                           '--epochs', '4', '--set', 'train.epochs=5'])
    spec = run.spec_from_args(args)
    assert spec.train.head_lr == 1e-3 and isinstance(spec.train.head_lr, float)
    assert spec.model_config.heads == 2 and spec.model_config.gate is False
    assert spec.data.vision_weights is None
    assert spec.train.epochs == 5  # --set wins over the flag


def test_a_run_that_dies_marks_its_folder_failed(run, tiny_encoder, graph_cache, tmp_path):
    with pytest.raises(ValueError, match="'max_length' must be at least 4"):
        run.main(['--model', 'bert-crf', '--encoder', tiny_encoder, '--out', str(tmp_path / 'run'),
                  '--cache-dir', str(graph_cache), '--set', 'model.max_length=2'])
    assert (tmp_path / 'run' / 'FAILED').read_text().startswith("ValueError: 'max_length' must be at least 4")
    assert not (tmp_path / 'run' / 'metrics.json').exists()


def test_an_interrupted_fresh_run_says_in_failed_what_it_kept(run, tiny_encoder, graph_cache, tmp_path,
                                                               monkeypatch, capsys):
    from graphmner.train import Trainer

    train_epoch = Trainer.train_epoch

    def ctrl_c_in_epoch_2(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return train_epoch(self, epoch)
    monkeypatch.setattr(Trainer, 'train_epoch', ctrl_c_in_epoch_2)
    monkeypatch.setattr('sys.argv', ['experiments/run.py', '--model', 'bert-crf'])
    with pytest.raises(SystemExit) as exit_info:
        run.main(['--model', 'bert-crf', '--encoder', tiny_encoder, '--epochs', '3', '--out', str(tmp_path),
                  '--cache-dir', str(graph_cache)])
    assert exit_info.value.code == 130
    kept = f'interrupted in epoch 2 of 3: {tmp_path / "last.pt"} keeps epoch 1'
    err = capsys.readouterr().err
    assert err.startswith(f'run.py: {kept}') and err.endswith(
        '; continue with: python experiments/run.py --model bert-crf --resume\n') and err.count('\n') == 1
    assert (tmp_path / 'FAILED').read_text().startswith(f'TrainingInterrupted: {kept}')
    assert '--resume continues from it' in (tmp_path / 'FAILED').read_text()


def test_a_text_only_model_extracts_no_visual_features(run, tiny_encoder, tmp_path, monkeypatch):
    """bert-crf reads no visual node: no backbone or detector is built, not even on a fresh cache."""
    from graphmner.features import extract

    def refuse(*args, **kwargs):
        raise AssertionError('a feature extractor was built for a text-only model')

    monkeypatch.setattr(extract.FeatureExtractor, '__init__', refuse)
    metrics = run.main(['--model', 'bert-crf', '--encoder', tiny_encoder, '--epochs', '1', '--out',
                        str(tmp_path / 'run'), '--cache-dir', str(tmp_path / 'cache')])
    assert metrics['test']['support'] > 0
    log = (tmp_path / 'run' / 'log.txt').read_text()
    assert 'bert-crf reads no image node: no visual features extracted' in log
    assert not (tmp_path / 'cache' / 'features').exists()


def test_ita_without_any_image_text_is_one_line_and_exit_2(run, tiny_encoder, tmp_path, capsys):
    """ITA trained where no tweet has aux words (no caption file, no images) would be its text view
    alone under ITA's name: refused, with the flag that gives it the captions."""
    data = tmp_path / 'data'
    data.mkdir()
    for split in ('train', 'valid', 'test'):
        write_conll(read_conll(DEMO_DIR / f'{split}.txt')[:8], data / f'{split}.txt')
    argv = ['--model', 'ita', '--dataset', str(data), '--encoder', tiny_encoder, '--epochs', '1',
            '--cache-dir', str(tmp_path / 'cache')]
    with pytest.raises(SystemExit) as exit_info:
        run.main([*argv, '--out', str(tmp_path / 'run')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert ('ita reads aux words (caption) but none of the 8 training tweets has any: give --captions FILE'
            in err and err.count('\n') == 1), err
    assert not (tmp_path / 'run' / 'metrics.json').exists()
    # the text view alone, asked for by name, trains
    metrics = run.main([*argv, '--out', str(tmp_path / 'text-only'), '--set', 'model.aux_sources=[]'])
    assert metrics['test']['support'] > 0


@pytest.mark.parametrize('model', ['umgf', 'maf', 'gmf'])
def test_a_visual_method_reading_aux_without_any_is_refused(run, tiny_encoder, tmp_path, capsys, model):
    """With model.aux_sources set, UMGF, MAF and GMF are told apart from their paper's model only by the
    aux words: a training split without any is refused as for ITA."""
    data = tmp_path / 'data'
    data.mkdir()
    for split in ('train', 'valid', 'test'):
        write_conll(read_conll(DEMO_DIR / f'{split}.txt')[:8], data / f'{split}.txt')
    with pytest.raises(SystemExit) as exit_info:
        run.main(['--model', model, '--dataset', str(data), '--encoder', tiny_encoder, '--epochs', '1',
                  '--cache-dir', str(tmp_path / 'cache'), '--out', str(tmp_path / 'run'),
                  '--set', 'model.aux_sources=[caption]'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f'{model} reads aux words (caption) but none of the 8 training tweets has any' in err, err
