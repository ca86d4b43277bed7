"""Atomic writes and checkpoint reading: the modes of written files, and why a file is unreadable."""
import os
import pickle

import pytest
import torch

from graphmner.io import CheckpointError, atomic_save, atomic_write_text, load_checkpoint


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_writes_get_the_mode_of_any_other_file(tmp_path, umask_022):
    """best.pt, last.pt, history.json and training.png were 0600 beside 0644 run files."""
    atomic_save({'x': torch.zeros(1)}, tmp_path / 'best.pt')
    atomic_write_text(tmp_path / 'history.json', '[]')
    (tmp_path / 'metrics.json').write_text('{}')
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {'best.pt': 0o644, 'history.json': 0o644, 'metrics.json': 0o644}
    assert os.umask(0o022) == 0o022  # the umask is left as it was


def reason(path):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    head, tail = f"'{path}' is not a readable checkpoint (", '): it may be truncated or not a graphmner file'
    message = str(info.value)
    assert message.startswith(head) and message.endswith(tail), message
    return message[len(head):-len(tail)]


def test_an_unreadable_checkpoint_says_why_in_a_whole_phrase(tmp_path):
    text = tmp_path / 'notes.pt'
    text.write_text('hello world\n')  # a renamed text file: torch raises a bare KeyError('101')
    assert reason(text) == 'not a torch file: neither a zip archive nor a pickle'
    empty = tmp_path / 'empty.pt'
    empty.write_bytes(b'')
    assert reason(empty) == 'it ends before any data'
    objects = tmp_path / 'objects.pt'
    objects.write_bytes(pickle.dumps({'model': object()}))
    got = reason(objects)  # torch's message opens with several sentences on a changed default
    assert got.startswith('not a weights-only torch file (Unsupported operand') and 'PyTorch 2.6' not in got
    whole = tmp_path / 'whole.pt'
    torch.save({'x': torch.zeros(1000)}, whole)
    cut = tmp_path / 'cut.pt'
    cut.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 2])
    got = reason(cut)  # the first sentence of torch's, whole
    assert got == 'PytorchStreamReader failed reading zip archive: failed finding central directory', got
    cut.write_bytes(whole.read_bytes()[:-100])  # torch: a bare OSError '[Errno 22] Invalid argument'
    assert reason(cut) == 'its zip archive is cut off or damaged (Invalid argument)'
