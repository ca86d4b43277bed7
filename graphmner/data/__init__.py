"""Data: the CoNLL reader/writer, label schemes, images and tweet-graph datasets."""
from .conll import ConllFormatError, Tweet, read_conll, write_conll
from .datasets import GraphOptions, TweetGraphs, load_dataset
from .labels import BIO_LABELS, ENTITY_TYPES

__all__ = ['BIO_LABELS', 'ENTITY_TYPES', 'ConllFormatError', 'GraphOptions', 'Tweet', 'TweetGraphs',
           'load_dataset', 'read_conll', 'write_conll']
