"""graphmner: multimodal named entity recognition on tweet-image graphs.

``from graphmner import Tagger`` tags new tweets with a trained model; the
subpackages hold the data, features, graphs, layers, models and training.
Importing the package itself stays light: ``Tagger`` is loaded on first use.

Importing it hides one warning: torch_geometric's import calls
``torch.jit.script``, which torch 2.10+ deprecates with a FutureWarning that no
user of this package can act on (``graphmner ... --verbose`` shows it again).
"""
import warnings

from .version import __version__

#: The message of torch's ``torch.jit.script`` deprecation, as a warnings filter pattern.
TORCH_JIT_WARNING = r'`torch\.jit\.script` is deprecated'
warnings.filterwarnings('ignore', message=TORCH_JIT_WARNING, category=FutureWarning)

__all__ = ['Tagger', '__version__']


def __getattr__(name: str):
    if name == 'Tagger':
        from .predict import Tagger
        return Tagger
    raise AttributeError(f"module 'graphmner' has no attribute '{name}'")
