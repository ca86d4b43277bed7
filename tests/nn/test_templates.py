"""PyG's generated ``propagate`` sources do not pile up in the temporary folder."""
import os
import subprocess
import sys
import tempfile

import pytest
import torch
from conftest import ROOT

from graphmner.nn.cross_modal_gate import CrossModalGate
from graphmner.nn.graph_attention import GraphMultiHeadAttention


class FreshGate(CrossModalGate):
    """A class of its own: PyG generates its propagate() when the first one is built."""


class FreshAttention(GraphMultiHeadAttention):
    """A class of its own: PyG generates its propagate() when the first one is built."""


@pytest.mark.parametrize('fresh, kwargs', [(FreshGate, {}), (FreshAttention, {'heads': 2})])
def test_a_new_message_passing_class_leaves_no_source_file(fresh, kwargs, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    layer = fresh(4, **kwargs)
    module = sys.modules[f'{__name__}_{fresh.__name__}_propagate']
    assert os.path.dirname(module.__file__) == str(tmp_path)  # where PyG wrote it ...
    assert not list(tmp_path.iterdir())                        # ... and it is gone
    x, edges = torch.randn(3, 4), torch.tensor([[0, 1, 2], [1, 2, 0]])
    assert layer(x, edges).shape == (3, 4)                     # the loaded module still runs


@pytest.mark.slow
def test_building_every_model_leaves_the_temporary_folder_empty(tiny_encoder, tmp_path):
    """In a fresh process (where PyG generates every class's propagate()): every registered
    model is built, and no file is left in its temporary folder."""
    script = ('from graphmner import models\n'
              f'for name in models.available(): models.build(name, encoder={tiny_encoder!r})\n'
              'print(len(models.available()))')
    env = {**os.environ, 'TMPDIR': str(tmp_path), 'HF_HUB_OFFLINE': '1', 'PYTHONPATH': str(ROOT),
           'OMP_NUM_THREADS': '1'}
    result = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) >= 3
    assert sorted(p.name for p in tmp_path.iterdir()) == []
