"""graphmner: multimodal named entity recognition on tweet-image graphs.

``from graphmner import Tagger`` tags new tweets with a trained model; the
subpackages hold the data, features, graphs, layers, models and training.
Importing the package itself stays light: ``Tagger`` is loaded on first use.
"""
from .version import __version__

__all__ = ['Tagger', '__version__']


def __getattr__(name: str):
    if name == 'Tagger':
        from .predict import Tagger
        return Tagger
    raise AttributeError(f"module 'graphmner' has no attribute '{name}'")
