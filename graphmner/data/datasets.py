"""The datasets graphmner knows by name, and where their CoNLL splits live.

``demo`` ships inside the package; ``twitter2015`` and ``twitter2017`` are read
from a local copy of the UMT release (``--data-root``). Graphs are built from
these files by :func:`graphmner.graph.load_dataset`.
"""
from __future__ import annotations

import os
from pathlib import Path

DATASETS = ('demo', 'twitter2015', 'twitter2017')
SPLITS = ('train', 'dev', 'test')
#: Split name -> file name; ``dev`` is stored as ``valid.txt``, as in the Twitter releases.
SPLIT_FILES = {'train': 'train.txt', 'dev': 'valid.txt', 'test': 'test.txt'}


def split_path(name: str, split: str, data_root: str | os.PathLike | None = None) -> Path:
    """The CoNLL file of one split of dataset ``name``.

    Raises:
        ValueError: an unknown dataset or split, or no ``data_root`` for a
            dataset that is read from a local copy.
        FileNotFoundError: the file is not where ``data_root`` says.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset '{name}'; available: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"Unknown split '{split}'; use one of {', '.join(SPLITS)}")
    if name == 'demo':
        from .demo import DEMO_DIR
        return DEMO_DIR / SPLIT_FILES[split]
    if data_root is None:
        raise ValueError(f"'{name}' is read from a local copy: set data_root (--data-root) to the "
                         f"folder holding {name}/train.txt, valid.txt, test.txt")
    path = Path(data_root).expanduser() / name / SPLIT_FILES[split]
    if not path.exists():
        raise FileNotFoundError(f"'{path}' does not exist (check --data-root: it must hold "
                                f"{name}/{SPLIT_FILES[split]})")
    return path
