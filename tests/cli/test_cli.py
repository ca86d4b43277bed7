"""The graphmner command: train, predict, export, inspect; every mistake one line, exit 2."""
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
from conftest import ROOT, error_of

from graphmner import models
from graphmner.cli import MODEL_NAMES, main, quiet_third_parties
from graphmner.data.conll import read_conll
from graphmner.train.experiment import config_file


@pytest.fixture(scope='module')
def checkpoint(tiny_encoder, graph_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp('bert-crf-run')
    main(['train', '--model', 'bert-crf', '--encoder', tiny_encoder, '--epochs', '1', '--out', str(out),
          '--cache-dir', str(graph_cache)])
    return out / 'best.pt'


def test_ctrl_c_is_one_line_with_the_command_that_resumes(monkeypatch, capsys):
    from graphmner.cli import run_guarded
    from graphmner.train import TrainingInterrupted

    def interrupted():
        raise TrainingInterrupted('interrupted in epoch 2 of 3: runs/x/last.pt keeps epoch 1', 1)
    argv = ['/somewhere/graphmner', 'train', '--model', 'umgf', '--out', 'runs/my x']
    monkeypatch.setattr(sys, 'argv', argv)
    with pytest.raises(SystemExit) as exit_info:
        run_guarded('graphmner train', interrupted)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == ('graphmner train: interrupted in epoch 2 of 3: runs/x/last.pt keeps '
                                       'epoch 1; continue with: graphmner train --model umgf --out '
                                       "'runs/my x' --resume\n")
    monkeypatch.setattr(sys, 'argv', ['experiments/run.py', '--model', 'umgf', '--resume'])
    with pytest.raises(SystemExit):
        run_guarded('run.py', interrupted)
    assert capsys.readouterr().err.endswith(
        'continue with: python experiments/run.py --model umgf --resume\n')

    def stopped():
        raise KeyboardInterrupt
    with pytest.raises(SystemExit) as exit_info:
        run_guarded('graphmner predict', stopped)
    assert exit_info.value.code == 130 and capsys.readouterr().err == 'graphmner predict: interrupted\n'


def test_model_names_are_the_registry():
    assert tuple(sorted(MODEL_NAMES)) == tuple(models.available())


def test_predict_one_tweet(checkpoint, graph_cache, capsys):
    prediction = main(['predict', str(checkpoint), '--text', 'Barack Obama visits Paris', '--cache-dir',
                       str(graph_cache)])
    out = capsys.readouterr().out
    assert prediction.words == ['Barack', 'Obama', 'visits', 'Paris'] and out.startswith('Barack')


@pytest.mark.parametrize('in_fmt, out_fmt', [('jsonl', 'jsonl'), ('text', 'conll'), ('conll', 'jsonl')])
def test_predict_a_file(checkpoint, graph_cache, tmp_path, in_fmt, out_fmt):
    tweets = ['Barack Obama visits Paris', 'RT @nba : Kawhi Leonard wins #NBAAwards']
    source = tmp_path / f'in.{in_fmt}'
    if in_fmt == 'jsonl':
        lines = [json.dumps({'text': tweets[0]}), json.dumps({'words': tweets[1].split()})]
        source.write_text('\n'.join(lines) + '\n')
    elif in_fmt == 'text':
        source.write_text('\n'.join(tweets) + '\n')
    else:
        source.write_text(''.join(f'IMGID:{i}\n' + ''.join(f'{w}\tO\n' for w in t.split()) + '\n'
                                  for i, t in enumerate(tweets)))
    target = tmp_path / f'out.{out_fmt}'
    main(['predict', str(checkpoint), '--input', str(source), '--input-format', in_fmt, '--output',
          str(target), '--output-format', out_fmt, '--cache-dir', str(graph_cache)])
    if out_fmt == 'jsonl':
        rows = [json.loads(line) for line in target.read_text().splitlines()]
        assert len(rows) == 2 and rows[0]['words'] == ['Barack', 'Obama', 'visits', 'Paris']
        for row in rows:
            assert len(row['labels']) == len(row['words'])
            assert all({'text', 'type', 'start', 'end', 'confidence'} <= set(e) for e in row['entities'])
    else:
        tagged = read_conll(target)
        assert [t.words for t in tagged][0] == ['Barack', 'Obama', 'visits', 'Paris'] and len(tagged) == 2


def test_predict_a_file_to_a_displacy_page(checkpoint, graph_cache, tmp_path):
    source = tmp_path / 'in.txt'
    source.write_text('Barack Obama visits Paris\n<script>alert(1)</script> http://t.co/x\n')
    target = tmp_path / 'out.html'  # the format from the extension
    predictions = main(['predict', str(checkpoint), '--input', str(source), '--output', str(target),
                        '--cache-dir', str(graph_cache)])
    page = target.read_text(encoding='utf-8')
    assert page.startswith('<!DOCTYPE html>') and page.count('<div class="entities"') == 2
    assert '<script' not in page and '://' not in page and 'http&#58;//t.co/x' in page
    assert page.count('&lt;') == 2  # the tweet's two tags, as words
    assert page.count('<mark class="entity"') == sum(len(p.entities) for p in predictions)
    assert '<h2 style="margin: 0">tweet0</h2>' in page


def test_bad_input_is_one_line_and_writes_nothing(checkpoint, tmp_path, capsys):
    target = tmp_path / 'out.jsonl'
    assert 'no checkpoint at' in error_of(['predict', str(tmp_path / 'none.pt'), '--text', 'x'], capsys)
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a checkpoint at all')
    assert 'is not a readable checkpoint' in error_of(['predict', str(junk), '--text', 'x'], capsys)
    old = torch.load(checkpoint, weights_only=True)
    old.update(format=1, graphmner_version='0.1.0')
    torch.save(old, tmp_path / 'old.pt')
    assert 'written by graphmner 0.1.0 (checkpoint format 1)' in error_of(
        ['predict', str(tmp_path / 'old.pt'), '--text', 'x'], capsys)
    assert "--input '" in error_of(['predict', str(checkpoint), '--input', str(tmp_path / 'none.txt'),
                                    '--output', str(target)], capsys)
    bad = tmp_path / 'bad.jsonl'
    bad.write_text('{"text": "fine"}\n{not json\n')
    assert 'line 2 is not JSON' in error_of(['predict', str(checkpoint), '--input', str(bad), '--output',
                                             str(target)], capsys)
    assert "invalid choice: 'xml'" in error_of(['predict', str(checkpoint), '--input', str(bad),
                                                '--input-format', 'xml', '--output', str(target)], capsys)
    assert not target.exists()


def test_a_wrong_image_for_one_tweet_is_an_error(checkpoint, tmp_path, capsys):
    broken = tmp_path / 'photo.jpg'
    broken.write_bytes(b'<html>not a photo</html>')
    for image, reason in ((tmp_path / 'phto.jpg', 'does not exist'),
                          (tmp_path, 'is a folder, not an image file'),
                          (broken, 'cannot be used (not_an_image: ')):
        message = error_of(['predict', str(checkpoint), '--text', 'Rob after a fish dinner', '--image',
                            str(image)], capsys)
        assert message.startswith(f"graphmner predict: error: --image '{image}' {reason}"), message
        assert message.rstrip().endswith('or leave --image out to tag from the text alone')


@pytest.mark.parametrize('argv, message', [
    (['--dataset', 'twitter2017'], "set data_root (--data-root)"),
    (['--dataset', 'no/such/folder'], "Unknown dataset 'no/such/folder'"),
    (['--encoder', '/missing/folder'], "--encoder '/missing/folder': the folder does not exist"),
    (['--batch-size', '0'], "'train.batch_size' must be at least 1, got 0"),
    (['--epochs', '0'], "'train.epochs' must be at least 1, got 0"),
    (['--epochs', '-1'], "'train.epochs' must be at least 1, got -1"),
    (['--set', 'train.nonsense=3'], "unknown setting 'train.nonsense'"),
    (['--set', 'train.head_lr=abc'], "'train.head_lr' must be a number, got 'abc'"),
    (['--dataset', 'twitter2017', '--data-root', 'EMPTY'],
     "check --data-root: it must hold twitter2017/train.txt"),
    (['--out', 'FILE/run'], "(--out): Not a directory"),
    (['--encoder', 'no-such-org/no-such-model'], "--encoder 'no-such-org/no-such-model' is not in the "
     'local Hugging Face cache and the hub is off (HF_HUB_OFFLINE=1): give a local model folder with '
     '--encoder PATH'),
])
def test_train_mistakes(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    (tmp_path / 'EMPTY').mkdir()
    (tmp_path / 'FILE').write_text('a file where the run folder should go')
    argv = [str(tmp_path / a) if a in ('EMPTY', 'FILE/run') else a for a in argv]
    out = tmp_path / 'run' if '--out' not in argv else None
    err = error_of(['train', '--model', 'bert-crf', *(['--out', str(out)] if out else []), *argv], capsys)
    assert message in err
    assert out is None or not out.exists()


@pytest.mark.parametrize('argv, message', [
    (['--set', 'data.detector_weights=EMPTY'], "(data.cascades) names 'frontalface_default', but its "
     "OpenCV data file 'EMPTY/haarcascade_frontalface_default.xml' is not in CascadeConfig.data_dir "
     "(data.detector_weights)"),
    (['--set', 'data.detector_weights=yolov8n.pt'], "DetectorConfig.weights (data.detector_weights) is "
     "'yolov8n.pt', which the cascade detector (data.detector_arch=cascade) reads as the folder"),
    (['--set', 'data.detector_arch=yolo', '--detector-weights', 'yolov8n.pt'],
     "DetectorConfig.weights (--detector-weights) is 'yolov8n.pt'"),
])
def test_missing_extractor_files_are_one_line_before_the_run(argv, message, tmp_path, capsys, monkeypatch):
    """A model that reads the demo's photos: its detector's files are looked for before the run starts."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'EMPTY').mkdir()
    argv = [a.replace('EMPTY', str(tmp_path / 'EMPTY')) for a in argv]
    out = tmp_path / 'run'
    err = error_of(['train', '--model', 'umgf', '--out', str(out), *argv], capsys)
    assert message.replace('EMPTY', str(tmp_path / 'EMPTY')) in err
    assert not out.exists()


@pytest.mark.parametrize('argv, message', [
    (['experiments/run.py', '--model', 'bert-crf', '--dataset', 'twitter2017', '--data-root', 'EMPTY'],
     'run.py: error: '),
    (['-m', 'graphmner', 'train', '--model', 'bert-crf', '--encoder', '/missing/folder'],
     'graphmner train: error: '),
    (['-m', 'graphmner', 'predict', 'none.pt', '--text', 'hi'], 'graphmner predict: error: '),
    (['experiments/bench_train.py', '--images', 'EMPTY'], 'bench_train.py: error: '),
    (['experiments/bench_train.py', '--images', 'EMPTY', '--model', 'bert-crf'], 'bench_train.py: error: '),
    (['experiments/bench_predict.py', '--images', 'EMPTY'], 'bench_predict.py: error: '),
])
def test_a_mistake_is_the_only_line_a_real_process_prints(argv, message, tmp_path):
    """In a fresh process, where torch_geometric's import warnings would come first."""
    (tmp_path / 'EMPTY').mkdir()
    argv = [str(tmp_path / a) if a == 'EMPTY' else a for a in argv]
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count('\n') == 1, result.stderr
    assert result.stdout == ''


@pytest.mark.parametrize('script', ['bench_graphs', 'bench_predict', 'bench_train', 'missing_images',
                                    'probe_visual'])
def test_experiment_scripts_silence_torch_geometric_import_warning(script):
    """These import torch_geometric at the top, so ``--help`` shows whether they quiet it first."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    result = subprocess.run([sys.executable, f'experiments/{script}.py', '--help'], capture_output=True,
                            text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert 'usage:' in result.stdout and 'Warning' not in result.stderr, result.stderr


def test_quiet_third_parties_drops_only_the_torch_jit_warning_unless_verbose():
    jit = '`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`.'
    for verbose, shown in ((False, ['other']), (True, [jit, 'other'])):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter('always')
            quiet_third_parties(verbose)
            warnings.warn(jit, FutureWarning, stacklevel=1)
            warnings.warn('other', FutureWarning, stacklevel=1)
        assert [str(w.message) for w in seen] == shown


def test_the_python_api_hides_the_torch_jit_warning_and_verbose_shows_it():
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    for code, shown in (('import graphmner.models', False),
                        ('from graphmner.cli import quiet_third_parties\nquiet_third_parties(verbose=True)\n'
                         'import torch_geometric', True)):
        result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env,
                                timeout=300, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        assert ('`torch.jit.script` is deprecated' in result.stderr) == shown, result.stderr


def test_a_command_that_works_exits_0_and_prints_its_result_once(graph_cache):
    """``sys.exit(main())`` would print the returned text to stderr and exit 1."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    argv = ['inspect', '--dataset', 'demo', '--split', 'dev', '--index', '1', '--cache-dir', str(graph_cache)]
    result = subprocess.run([sys.executable, '-m', 'graphmner', *argv], capture_output=True, text=True,
                            env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    text = main(argv)
    assert result.stdout.strip() == text.strip() and 'word' in text
    assert text.strip() not in result.stderr  # stderr has progress bars only


def test_trains_on_any_conll_folder(tiny_encoder, graph_cache, tmp_path):
    folder = tmp_path / 'drugs'
    folder.mkdir()
    block = ('IMGID:{i}\nTake\tO\naspirin\tB-DRUG\nfor\tO\nyour\tO\nmigraine\tB-DISEASE\n\n'
             'IMGID:{j}\nIbuprofen\tB-DRUG\neases\tO\nback\tB-DISEASE\npain\tI-DISEASE\n\n')
    for name in ('train.txt', 'valid.txt', 'test.txt'):
        (folder / name).write_text(''.join(block.format(i=2 * k, j=2 * k + 1) for k in range(4)))
    metrics = main(['train', '--model', 'bert-crf', '--dataset', str(folder), '--encoder', tiny_encoder,
                    '--epochs', '2', '--out', str(tmp_path / 'run'), '--cache-dir', str(graph_cache),
                    '--set', 'train.head_lr=5e-2'])
    assert metrics['labels'] == ['O', 'B-DRUG', 'I-DRUG', 'B-DISEASE', 'I-DISEASE']
    assert set(metrics['test']['per_type']) <= {'DRUG', 'DISEASE'}
    model = models.load(tmp_path / 'run' / 'best.pt')
    assert model.labels == ('O', 'B-DRUG', 'I-DRUG', 'B-DISEASE', 'I-DISEASE')


def test_own_data_with_no_dev_entity_found_points_at_the_demo_sized_settings(tiny_encoder, graph_cache,
                                                                              tmp_path):
    folder = tmp_path / 'corpus'
    folder.mkdir()
    for name in ('train.txt', 'valid.txt', 'test.txt'):
        (folder / name).write_text('IMGID:1\nTake\tO\naspirin\tB-DRUG\n\n'
                                   'IMGID:2\nIbuprofen\tB-DRUG\nnow\tO\n\n')
    # Twitter-2017's settings for a bert-crf: one epoch of a 2-tweet corpus finds nothing on dev
    metrics = main(['train', '--model', 'bert-crf', '--dataset', str(folder), '--encoder', tiny_encoder,
                    '--epochs', '1', '--out', str(tmp_path / 'run'), '--cache-dir', str(graph_cache)])
    assert metrics['dev']['f1'] == 0
    log = (tmp_path / 'run' / 'log.txt').read_text()
    demo = config_file('bert-crf', 'demo')
    assert 'bert-crf_twitter2017.yaml holds the settings for Twitter-2017' in log
    assert f'the demo-sized ones (more epochs, larger learning rates): --config {demo}\n' in log


def test_help_is_instant_and_explains_every_flag():
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore'}
    code = ('import sys, time; t = time.time(); from graphmner.cli import main\n'
            'try:\n    main(["predict", "--help"])\nexcept SystemExit:\n    pass\n'
            'print("torch" in sys.modules, file=sys.stderr)')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=60)
    assert result.stderr.strip() == 'False'  # no torch import for --help
    for flag in ('--text', '--image', '--input', '--input-format', '--image-root', '--output',
                 '--output-format'):
        assert flag in result.stdout
    assert 'e.g.' in result.stdout


def test_inspect_and_export(graph_cache, tmp_path, capsys):
    text = main(['inspect', '--dataset', 'demo', '--split', 'dev', '--index', '1', '--cache-dir',
                 str(graph_cache), '--draw', str(tmp_path / 'g.png')])
    assert 'word' in text and (tmp_path / 'g.png').stat().st_size > 0
    written = main(['export', '--dataset', 'demo', '--count', '1', '--format', 'graphml,html', '--out',
                    str(tmp_path), '--cache-dir', str(graph_cache)])
    assert sorted(p.suffix for p in written) == ['.graphml', '.html']
    assert capsys.readouterr().out.endswith(f'wrote 2 files for 1 graph to {tmp_path}\n')
    written = main(['export', '--dataset', 'demo', '--start', '20', '--count', '50', '--format', 'json',
                    '--out', str(tmp_path), '--cache-dir', str(graph_cache)])
    captured = capsys.readouterr()
    assert [p.name.split('_')[2] for p in written] == ['20', '21', '22', '23']  # the train split has 24
    assert captured.err.endswith('note: the train split has 24 graphs: --count 50 from --start 20 exports '
                                 'the 4 up to its end\n')
    assert captured.out.endswith(f'wrote 4 files for 4 graphs to {tmp_path}\n')
    err = error_of(['export', '--dataset', 'demo', '--start', '30', '--out', str(tmp_path), '--cache-dir',
                    str(graph_cache)], capsys)
    assert err == ('graphmner export: error: --start 30 is past the end of the train split, which has 24 '
                   'graphs (--start 0 to 23)\n')
    err = error_of(['inspect', '--index', '999', '--cache-dir', str(graph_cache)], capsys)
    assert '--index must be in [0, ' in err
