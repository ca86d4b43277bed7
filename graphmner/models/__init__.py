"""Model registry: ``available()``, ``build(name, **config)`` and ``load(path)``; model folders
(``save_pretrained`` / ``load_pretrained``, :mod:`graphmner.models.folder`).

Every model is a :class:`~graphmner.models.base.MNERModel` registered under the
name users pass to ``experiments/run.py --model``.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import torch

from .. import __version__
from ..data.labels import BIO_LABELS
from ..graph.data_config import DataConfig
from ..io import CheckpointError, load_checkpoint
from .base import CHECKPOINT_FORMAT, EncoderConfig, MNERModel, MNEROutput
from .bert_crf import BertCRF, BertCRFConfig
from .folder import ModelFolderError, export_checkpoint, load_pretrained, save_pretrained
from .gmf import GMF
from .ita import ITA, ITAConfig
from .maf import MAF, MAFConfig
from .umgf import UMGF, UMGFConfig

#: Checkpoint formats :func:`load` reads: this one, and format 2 (its data config an untyped dict).
READABLE_FORMATS = (2, CHECKPOINT_FORMAT)

_REGISTRY: dict[str, type[MNERModel]] = {}


def register(cls: type[MNERModel]) -> type[MNERModel]:
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"Model name '{cls.name}' is taken by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    return cls


register(BertCRF)
register(UMGF)
register(ITA)
register(MAF)
register(GMF)


def available() -> list[str]:
    """Names accepted by :func:`build` and ``run.py --model``."""
    return sorted(_REGISTRY)


def model_class(name: str) -> type[MNERModel]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown model '{name}'; available: {', '.join(available())}") from None


def build(name: str, labels: Sequence[str] = BIO_LABELS, **config: Any) -> MNERModel:
    """Builds model ``name`` from keyword config values (unknown keys are an error)."""
    cls = model_class(name)
    known = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"Unknown config key(s) for '{name}': {', '.join(unknown)}; "
                         f"valid: {', '.join(sorted(known))}")
    return cls(cls.config_class(**config), labels)


def load(path: str | os.PathLike, map_location: str | torch.device = 'cpu') -> MNERModel:
    """Rebuilds a saved model from its checkpoint (class by registry name).

    Raises:
        CheckpointError: a missing or unreadable file, a file that is not a
            graphmner model checkpoint (a trainer's ``last.pt`` included), or
            one written with another checkpoint format.
    """
    checkpoint = load_checkpoint(path, map_location)
    if not isinstance(checkpoint, dict) or 'model' not in checkpoint or 'state_dict' not in checkpoint:
        hint = " (a trainer state: use the run's best.pt)" if isinstance(checkpoint, dict) and \
            'optimizer' in checkpoint else ''
        raise CheckpointError(f"'{path}' is not a graphmner model checkpoint{hint}")
    written = checkpoint.get('format', 1)
    if written not in READABLE_FORMATS:
        version = checkpoint.get('graphmner_version', 'before 0.2')
        raise CheckpointError(f"'{path}' was written by graphmner {version} (checkpoint format {written}); "
                              f'this is graphmner {__version__} (format {CHECKPOINT_FORMAT}): retrain, or '
                              'load it with that version')
    if checkpoint['model'] not in _REGISTRY:
        raise CheckpointError(f"'{path}' holds a '{checkpoint['model']}' model, which this graphmner does "
                              f"not have (available: {', '.join(available())})")
    model = build(checkpoint['model'], checkpoint['labels'], **checkpoint['config'])
    model.load_state_dict(checkpoint['state_dict'])
    data = checkpoint.get('data')
    try:  # format 2 stored an untyped dict of the same record, without the visual widths
        model.data_config = None if data is None else DataConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"'{path}' holds a data config this graphmner cannot read ({error})") from None
    return model


__all__ = ['BertCRF', 'BertCRFConfig', 'EncoderConfig', 'ITA', 'ITAConfig', 'MAF', 'MAFConfig', 'MNERModel',
           'MNEROutput', 'ModelFolderError', 'UMGF', 'UMGFConfig', 'available', 'build', 'export_checkpoint',
           'load', 'load_pretrained', 'model_class', 'register', 'save_pretrained']
