"""graphmner installed non-editable from a clean clone, run from another working directory: the
configs are package data, the run folder lands under that directory's ./runs, and the checkpoint
tags a tweet (no path of the checkout is assumed)."""
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from graphmner import Tagger


@pytest.mark.slow
@pytest.mark.integration
def test_a_clean_install_trains_and_tags_from_another_folder(minilm, tmp_path):
    if shutil.which('git') is None or not (ROOT / '.git').exists():
        pytest.skip('needs git and a checkout to clone')
    head = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', 'HEAD'], capture_output=True, text=True,
                          check=True).stdout.strip()
    clone, target, work = tmp_path / 'clone', tmp_path / 'site', tmp_path / 'work'
    subprocess.run(['git', 'clone', '--quiet', str(ROOT), str(clone)], check=True)
    subprocess.run(['git', '-C', str(clone), 'checkout', '--quiet', head], check=True)
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-build-isolation',
                    '--no-index', '--target', str(target), str(clone)], check=True, timeout=600)
    assert (target / 'graphmner' / 'configs' / 'bert-crf_demo.yaml').is_file()  # package data installed
    work.mkdir()
    env = {**{k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'GRAPHMNER_CACHE')},
           'PYTHONPATH': str(target), 'HF_HUB_OFFLINE': '1', 'YOLO_OFFLINE': 'true'}

    def graphmner(*argv):
        return subprocess.run([sys.executable, '-m', 'graphmner', *argv], capture_output=True, text=True,
                              env=env, cwd=work, timeout=900)

    where = subprocess.run([sys.executable, '-c', 'import graphmner; print(graphmner.__file__)'],
                           capture_output=True, text=True, env=env, cwd=work, check=True).stdout
    assert where.startswith(str(target)), where  # the installed copy, not the checkout
    trained = graphmner('train', '--model', 'bert-crf', '--encoder', minilm, '--epochs', '1',
                        '--set', 'model.max_length=64', '--set', 'train.batch_size=12')
    assert trained.returncode == 0, trained.stderr[-2000:]
    run = work / 'runs' / 'bert-crf-demo-seed1'
    assert (run / 'metrics.json').is_file() and (run / 'best.pt').is_file()
    assert f'run folder: {run}' in trained.stdout
    assert (work / 'graphs' / 'cache').is_dir() and not (target / 'graphs').exists()
    text = 'Barack Obama visits Paris with the Lakers'
    tagged = graphmner('predict', str(run / 'best.pt'), '--text', text)
    assert tagged.returncode == 0, tagged.stderr[-2000:]
    # the installed command tags as this checkout's Tagger does with the same checkpoint
    assert tagged.stdout.strip() == str(Tagger.load(run / 'best.pt', cache_dir=work / 'graphs' / 'cache')
                                        .predict(text))
    assert tagged.stdout.split('\n')[0].split() and [w.split('/')[0] for w in tagged.stdout.split('\n')[0]
                                                     .split()] == text.split()
