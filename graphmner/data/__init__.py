"""Data: the CoNLL reader/writer, label schemes, the named datasets and images.

Tweet graphs are built from these by :mod:`graphmner.graph`
(``from graphmner.graph import load_dataset``).
"""
from .conll import ConllFormatError, Tweet, read_conll, write_conll
from .datasets import DATASETS, SPLITS, dataset_labels, split_path
from .labels import BIO_LABELS, ENTITY_TYPES

__all__ = ['BIO_LABELS', 'DATASETS', 'ENTITY_TYPES', 'SPLITS', 'ConllFormatError', 'Tweet', 'dataset_labels',
           'read_conll', 'split_path', 'write_conll']
