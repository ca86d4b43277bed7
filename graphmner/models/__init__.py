"""Model registry: ``available()``, ``build(name, **config)`` and ``load(path)``; model folders
(``save_pretrained`` / ``load_pretrained``, :mod:`graphmner.models.folder`).

Every model is a :class:`~graphmner.models.base.MNERModel` registered under the
name users pass to ``experiments/run.py --model``: the built-in ones are listed
once, in :mod:`graphmner.models.names`, and others join with :func:`register`.
Importing this package loads no model (nor torch): a model's module is imported
when the model is first asked for, and the classes below (``UMGF``,
``MNERModel``, ...) are loaded on first access.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .names import BUILTIN_MODELS, MODEL_NAMES

if TYPE_CHECKING:
    import torch

    from .base import MNERModel

_REGISTRY: dict[str, type[MNERModel]] = {}

#: Public name -> the module of this package that defines it (loaded on first access).
_LAZY = {'MNERModel': 'base', 'MNEROutput': 'base', 'EncoderConfig': 'base', 'CHECKPOINT_FORMAT': 'base',
         'READABLE_FORMATS': 'base',
         'BertCRF': 'bert_crf', 'BertCRFConfig': 'bert_crf', 'GMF': 'gmf', 'GMFConfig': 'gmf',
         'ITA': 'ita', 'ITAConfig': 'ita', 'MAF': 'maf', 'MAFConfig': 'maf', 'UMGF': 'umgf',
         'UMGFConfig': 'umgf', 'ModelFolderError': 'folder', 'export_checkpoint': 'folder',
         'load_pretrained': 'folder', 'save_pretrained': 'folder'}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f'{__name__}.{_LAZY[name]}'), name)
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")


def _builtin(name: str) -> type[MNERModel]:
    module, cls = BUILTIN_MODELS[name].split(':')
    return getattr(importlib.import_module(f'{__name__}.{module}'), cls)


def register(cls: type[MNERModel]) -> type[MNERModel]:
    """Adds a model class under its ``name`` (a built-in name only for the built-in class)."""
    taken = _REGISTRY.get(cls.name) or (_builtin(cls.name) if cls.name in BUILTIN_MODELS else None)
    if taken is not None and taken is not cls:
        raise ValueError(f"Model name '{cls.name}' is taken by {taken.__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names accepted by :func:`build` and ``run.py --model``."""
    return sorted({*MODEL_NAMES, *_REGISTRY})


def model_class(name: str) -> type[MNERModel]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in BUILTIN_MODELS:
        return register(_builtin(name))
    raise ValueError(f"Unknown model '{name}'; available: {', '.join(available())}")


def build(name: str, labels: Sequence[str] | None = None, **config: Any) -> MNERModel:
    """Builds model ``name`` from keyword config values (unknown keys are an
    error); ``labels`` default to :data:`~graphmner.data.labels.BIO_LABELS`."""
    return model_class(name).from_config(labels, **config)


def load(path: str | os.PathLike, map_location: str | torch.device = 'cpu') -> MNERModel:
    """Rebuilds a saved model from its checkpoint (class by registry name).

    Raises:
        CheckpointError: a missing or unreadable file, a file that is not a
            graphmner model checkpoint (a trainer's ``last.pt`` included), one
            written with another checkpoint format, or one of a model this
            graphmner does not have.
    """
    from ..io import CheckpointError
    from .base import read_checkpoint

    checkpoint = read_checkpoint(path, map_location)
    if checkpoint['model'] not in available():
        raise CheckpointError(f"'{path}' holds a '{checkpoint['model']}' model, which this graphmner does "
                              f"not have (available: {', '.join(available())})")
    return model_class(checkpoint['model']).from_checkpoint(checkpoint)


__all__ = ['BertCRF', 'BertCRFConfig', 'EncoderConfig', 'GMF', 'GMFConfig', 'ITA', 'ITAConfig', 'MAF',
           'MAFConfig', 'MNERModel', 'MNEROutput', 'MODEL_NAMES', 'ModelFolderError', 'UMGF', 'UMGFConfig',
           'available', 'build', 'export_checkpoint', 'load', 'load_pretrained', 'model_class', 'register',
           'save_pretrained']
