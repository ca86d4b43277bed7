"""graphs/inspect.ipynb runs headless (nbclient) from the repository root (it describes
the 24 demo train photos with the weight-free descriptors)."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / 'graphs' / 'inspect.ipynb'


def test_notebook_committed_without_outputs():
    nbformat = pytest.importorskip('nbformat')
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == 'code':
            assert not cell.outputs and cell.execution_count is None


@pytest.mark.integration
def test_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip('nbformat')
    nbclient = pytest.importorskip('nbclient')
    monkeypatch.setenv('GRAPHMNER_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    (tmp_path / 'tmp').mkdir()
    monkeypatch.setenv('TMPDIR', str(tmp_path / 'tmp'))  # the kernel's temporary folder
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name='python3',
                            resources={'metadata': {'path': str(ROOT)}}).execute()
    text = ''.join(o.get('text', '') for c in nb.cells if c.cell_type == 'code' for o in c.outputs)
    assert 'Tweet graph' in text and 'graph.html' in text
    assert 'Visual features: descriptors' in text  # the summary names the demo's backend
    assert 'torch.jit.script' not in text  # importing graphmner hides torch_geometric's FutureWarning
    # the exports land under the cache folder, and nothing is left in the temporary folder
    # (no graphmner-graphs-* folders, no PyG *_propagate_*.py sources)
    assert (tmp_path / 'cache' / 'exports' / 'demo-train-0' / 'graph.html').is_file()
    left = sorted(p.name for p in (tmp_path / 'tmp').iterdir())
    assert not [name for name in left if name.startswith('graphmner') or name.endswith('.py')], left
