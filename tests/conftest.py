"""Shared fixtures: a tiny random BERT (real tokenizer vocabulary, random
weights: unit tests stay fast), fake image features, the ../shared paths."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('YOLO_OFFLINE', 'true')
# One torch thread, here and in every process a test starts (run.py, the notebook kernel): the
# tiny test models gain nothing from more, and on a machine shared with other jobs two threads
# waiting on each other made the trainer tests 6x slower (94 s against 14 s).
os.environ.setdefault('OMP_NUM_THREADS', '1')

import pytest
import torch
from torch_geometric.data import Batch

from graphmner.data.conll import Tweet
from graphmner.features.types import ImageFeatures, NodeFeatures

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared'
MINILM = SHARED / 'models' / 'all-MiniLM-L6-v2'
DATA = SHARED / 'data'


def load_experiment(name: str) -> ModuleType:
    """Imports ``experiments/<name>.py``, which is a script, not a package module."""
    spec = importlib.util.spec_from_file_location(f'experiments_{name}', ROOT / 'experiments' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f'{path} is not here (the ../shared folder of this project)')
    return path


@pytest.fixture(scope='session')
def minilm() -> str:
    """The real pretrained 6-layer MiniLM encoder."""
    return str(require(MINILM))


@pytest.fixture(scope='session')
def shared_data() -> Path:
    return require(DATA)


@pytest.fixture(scope='session')
def graph_cache(tmp_path_factory) -> Path:
    """One graph and feature cache for the whole session: the demo photos go
    through ResNet and YOLO once."""
    return tmp_path_factory.mktemp('graph-cache')


@pytest.fixture(scope='session')
def tiny_encoder(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random BERT with MiniLM's WordPiece vocabulary."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = require(MINILM / 'vocab.txt')
    path = tmp_path_factory.mktemp('tiny-bert')
    # transformers 5 reads `vocab=`; `vocab_file=` is silently ignored, leaving a 5-token
    # vocabulary in which every word is [UNK].
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    assert tokenizer.vocab_size > 30000 and tokenizer.tokenize('fish') == ['fish']
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def fake_features(num_objects: int = 2, dim: int = 8, names: tuple[str, ...] = ('person', 'dog'),
                  seed: int = 0) -> ImageFeatures:
    """Random visual features shaped like the extractor's (49 regions, 16 scale cells)."""
    g = torch.Generator().manual_seed(seed)
    boxes = lambda n: torch.rand(n, 2, generator=g).repeat(1, 2) * torch.tensor([0.5, 0.5, 1, 1])
    return ImageFeatures({
        'image': NodeFeatures(torch.randn(1, dim, generator=g)),
        'region': NodeFeatures(torch.randn(49, dim, generator=g), {'box': boxes(49)}),
        'scale': NodeFeatures(torch.randn(16, dim, generator=g),
                              {'level': torch.arange(4).repeat_interleave(4), 'box': boxes(16)}),
        'object': NodeFeatures(torch.randn(num_objects, dim, generator=g),
                               {'box': boxes(num_objects), 'cls': torch.arange(num_objects),
                                'score': torch.rand(num_objects, generator=g)},
                               [names[i % len(names)] for i in range(num_objects)])})


def assert_names_first_faulty_line(read, folder: Path, data: bytes, error) -> None:
    """That ``error`` (a ConllFormatError ``read`` raised on ``data``) names the first line at fault:
    the file cut just after that line is refused at the same line, and cut just before it, it reads or
    is refused at an earlier line (an encoding error is found before the layout is looked at)."""
    from graphmner.data.conll import ConllFormatError

    lines = data.split(b'\n')  # a line number outside the file fails the cuts below
    assert str(error).startswith(f'{error.path}:{error.line}: ')
    cut = folder / 'cut.txt'
    cut.write_bytes(b'\n'.join(lines[:error.line]))
    with pytest.raises(ConllFormatError) as after:
        read(cut)
    assert after.value.line == error.line, (error, after.value)
    if error.line == 1:  # nothing before it (an empty file is refused at line 1 too)
        return
    cut.write_bytes(b'\n'.join(lines[:error.line - 1]))
    try:
        read(cut)
    except ConllFormatError as before:
        assert before.line < error.line, (error, before)


def batch_for(model, graphs) -> Batch:
    """The graphs as the data pipeline hands them to ``model``: its graph
    transform applied (to copies), then batched."""
    transform = model.graph_transform()
    return Batch.from_data_list([transform(g.clone()) for g in graphs])


@pytest.fixture
def long_tweet() -> Tweet:
    words = ['RT', 'Kevin', 'Durant', 'and', 'the', 'Warriors', 'celebrate', 'in', 'Oakland', 'tonight']
    return Tweet('demo_2', words, ['O', 'B-PER', 'I-PER', 'O', 'O', 'B-ORG', 'O', 'O', 'B-LOC', 'O'])


@pytest.fixture
def tweet() -> Tweet:
    return Tweet('demo_1', ['Handsome', 'Rob', 'after', 'a', 'fish', 'dinner'],
                 ['O', 'B-PER', 'O', 'O', 'O', 'O'])


def error_of(argv: list[str], capsys) -> str:
    """What ``graphmner <argv>`` prints for a user mistake, checked to be one line and exit 2."""
    from graphmner.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1, err  # one line, no traceback
    return err
