"""The datasets graphmner reads, and where their CoNLL splits live.

``demo`` ships inside the package; ``twitter2015`` and ``twitter2017`` are read
from a local copy of the UMT release (``--data-root``); any other dataset is a
folder holding ``train.txt``, ``valid.txt`` and ``test.txt`` in the same
``IMGID:`` CoNLL format, with any entity types. Graphs are built from these
files by :func:`graphmner.graph.load_dataset`.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conll import Tweet, read_conll
from .demo import DEMO_DIR, DEMO_OPTIONS
from .labels import BIO_LABELS, split_label
from .paths import SPLIT_FILES

DATASETS = ('demo', 'twitter2015', 'twitter2017')
SPLITS = ('train', 'dev', 'test')


@dataclass(frozen=True)
class DatasetDefinition:
    """What a dataset brings besides its files.

    Args:
        name (str): ``demo``, ``twitter2015``, ``twitter2017``, or a folder.
        tokenizer (str): how raw text is split into its words
            (:func:`~graphmner.data.tokenize.tokenize_tweet` style): Twitter-2017 splits ``#`` and
            ``@`` off, Twitter-2015, the demo and a folder keep hashtags whole.
        config (str): whose package configs (``<model>_<config>.yaml``) it trains with; a folder
            takes Twitter-2017's.
        graph_options (dict): graph options it is built with unless set (the demo's
            weight-free extractors, :data:`~graphmner.data.demo.DEMO_OPTIONS`).
    """

    name: str
    tokenizer: str = 'twitter2015'
    config: str = 'twitter2017'
    graph_options: dict[str, Any] = field(default_factory=dict)


def dataset_definition(name: str | os.PathLike) -> DatasetDefinition:
    """The :class:`DatasetDefinition` of a named dataset or a dataset folder (any path that is not
    one of :data:`DATASETS`; whether it holds the split files is :func:`split_path`'s check)."""
    if name == 'demo':
        return DatasetDefinition('demo', 'twitter2015', 'demo', dict(DEMO_OPTIONS))
    if name == 'twitter2015':
        return DatasetDefinition('twitter2015', 'twitter2015', 'twitter2015')
    if name == 'twitter2017':
        return DatasetDefinition('twitter2017', 'twitter2017', 'twitter2017')
    return DatasetDefinition(str(name))


def is_folder_dataset(name: str | os.PathLike) -> bool:
    """Whether ``name`` is a dataset folder (not one of :data:`DATASETS`)."""
    return str(name) not in DATASETS


def split_path(name: str | os.PathLike, split: str, data_root: str | os.PathLike | None = None) -> Path:
    """The CoNLL file of one split of dataset ``name`` (a name of
    :data:`DATASETS` or a folder holding the three split files).

    Raises:
        ValueError: an unknown split, a name that is neither a known dataset nor
            a folder, or no ``data_root`` for a dataset read from a local copy.
        FileNotFoundError: the file is not where ``data_root`` / the folder says.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split '{split}'; use one of {', '.join(SPLITS)}")
    if is_folder_dataset(name):
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise ValueError(f"Unknown dataset '{name}': neither one of {', '.join(DATASETS)} nor a folder "
                             f"holding {', '.join(SPLIT_FILES.values())}")
        path = folder / SPLIT_FILES[split]
        if not path.is_file():
            raise FileNotFoundError(f"The dataset folder '{folder}' has no {SPLIT_FILES[split]} "
                                    f"(it needs {', '.join(SPLIT_FILES.values())})")
        return path
    if name == 'demo':
        return DEMO_DIR / SPLIT_FILES[split]
    if data_root is None:
        raise ValueError(f"'{name}' is read from a local copy: set data_root (--data-root) to the "
                         f"folder holding {name}/train.txt, valid.txt, test.txt")
    path = Path(data_root).expanduser() / name / SPLIT_FILES[split]
    if not path.exists():
        raise FileNotFoundError(f"'{path}' does not exist (check --data-root: it must hold "
                                f"{name}/{SPLIT_FILES[split]})")
    return path


def labels_of(tweets: Iterable[Tweet]) -> tuple[str, ...]:
    """The BIO label set of a dataset read from its (training) tweets: ``'O'``,
    then ``B-``/``I-`` of each entity type in the order the types first appear.
    Raises :class:`ValueError` on a label that is not BIO."""
    types = dict.fromkeys(split_label(label)[1] for tweet in tweets for label in tweet.labels)
    types.pop('', None)
    return ('O', ) + tuple(f'{prefix}-{t}' for t in types for prefix in 'BI')


def dataset_labels(name: str | os.PathLike, data_root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """The label set a model trained on dataset ``name`` tags with: the fixed
    :data:`~graphmner.data.labels.BIO_LABELS` for the named datasets (so their
    checkpoints agree), the training split's own types for a folder."""
    if not is_folder_dataset(name):
        return BIO_LABELS
    return labels_of(read_conll(split_path(name, 'train', data_root)))
