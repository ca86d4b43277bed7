r"""Model folders in the Hugging Face convention: :func:`save_pretrained` and :func:`load_pretrained`.

    DIR/
      config.json        graphmner's keys: the format marker, library version, model (registry
                         name), model config, labels, data config (how its graphs were built)
      model.safetensors  every tensor of the state dict, the fine-tuned encoder's included
                         (safetensors: no pickle; a tensor shared by two names is stored once)
      encoder/           the text encoder's config and tokenizer files (its weights are in
                         model.safetensors), so the folder needs no other encoder folder
      README.md          a model card: dataset, scores and their run, settings, what the model reads

A folder of another library (a plain Hugging Face model, whose ``config.json`` lacks graphmner's
keys) or of another folder format is a :class:`ModelFolderError` naming the folder and what it is.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..graph.data_config import DataConfig
from ..io import CheckpointError
from ..nn.encoder import weights_loaded_later
from ..version import __version__
from .base import MNERModel
from .card import model_card, shown

#: Bumped whenever the folder's layout or ``config.json`` keys change; other formats are refused.
FOLDER_FORMAT = 1
CONFIG = 'config.json'
WEIGHTS = 'model.safetensors'
ENCODER = 'encoder'
CARD = 'README.md'
#: The key that marks a graphmner model folder's ``config.json``.
MARKER = 'graphmner_format'


class ModelFolderError(CheckpointError):
    """A folder that cannot be read as a graphmner model folder (or written as one); one line."""


# -- the state dict as safetensors -----------------------------------------------------------------


def save_state(module: nn.Module, path: str | os.PathLike) -> None:
    """Writes ``module``'s state dict to a safetensors file; tensors shared by several names (tied
    weights) are stored once under one of them, as :func:`safetensors.torch.save_model` does."""
    from safetensors.torch import save_model

    save_model(module, str(path), metadata={'format': 'pt'}, force_contiguous=True)


def load_state(module: nn.Module, path: str | os.PathLike, device: str | torch.device = 'cpu') -> None:
    """Loads a file of :func:`save_state` into ``module`` (every name, shared ones included);
    a missing, unexpected or misshapen tensor is a :class:`ModelFolderError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        load_model(module, str(path), strict=True, device=str(device))
    except (SafetensorError, OSError) as error:
        raise ModelFolderError(f"'{path}' is not a readable safetensors file "
                               f'({_first_line(error)})') from None
    except RuntimeError as error:  # missing / unexpected keys, shape mismatches
        raise ModelFolderError(f"'{path}' does not fit the model its config.json describes "
                               f'({_first_line(error)})') from None


def _first_line(error: BaseException) -> str:
    text = ' '.join(str(error).split())
    return (text or type(error).__name__)[:300]


# -- writing ---------------------------------------------------------------------------------------


def is_model_folder(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a ``config.json`` with graphmner's format marker (any format)."""
    try:
        config = json.loads((Path(directory) / CONFIG).read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and MARKER in config


def folder_config(model: MNERModel) -> dict[str, Any]:
    """What ``config.json`` holds for ``model``; its encoder is the folder's ``encoder/``."""
    config = dataclasses.asdict(model.config)
    origin = encoder_origin(model.config.encoder)
    config['encoder'] = ENCODER
    return {MARKER: FOLDER_FORMAT, 'library_name': 'graphmner', 'graphmner_version': __version__,
            'model': model.name, 'model_config': config, 'encoder_origin': origin,
            'labels': list(model.labels),
            'data_config': None if model.data_config is None else model.data_config.to_dict()}


def encoder_origin(encoder: str) -> str:
    """The encoder a model was fine-tuned from: ``encoder`` itself, or, for the ``encoder/`` of a
    model folder (a model loaded by :func:`load_pretrained`), the origin that folder records."""
    path = Path(encoder)
    if path.name == ENCODER and is_model_folder(path.parent):
        return json.loads((path.parent / CONFIG).read_text(encoding='utf-8')).get('encoder_origin', encoder)
    return encoder


def run_metrics(run: str | os.PathLike | None, model: MNERModel) -> tuple[dict[str, Any] | None, str]:
    """(the run folder's ``metrics.json``, or None, and why not, as the card says it) for the
    card's scores: only a record of this model (same registry name and labels) is used."""
    if run is None:
        return None, 'the model was not saved from a run folder'
    path = Path(run) / 'metrics.json'
    where = f"the metrics.json of the run folder '{shown(run)}'"
    if not path.is_file():
        return None, f"the run folder '{shown(run)}' has no metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as error:
        return None, f'{where} is not readable JSON ({_first_line(error)})'
    found = metrics.get('model') if isinstance(metrics, dict) else None
    if found != model.name:
        return None, f'{where} records another model ({found!r}, not {model.name!r})'
    if list(metrics.get('labels', model.labels)) != list(model.labels):
        return None, f'{where} records a model with other labels'
    return metrics, ''


def save_pretrained(model: MNERModel, directory: str | os.PathLike, *,
                    run: str | os.PathLike | None = None) -> Path:
    """Writes ``model`` as a model folder at ``directory`` and returns its path.

    Args:
        model: the model (its ``data_config`` says how its graphs were built).
        directory: a new or empty folder, or an earlier graphmner model folder, whose model files
            are replaced (any other file in it is kept).
        run (path, optional): the run folder the model comes from; its ``metrics.json`` gives
            the card its scores.

    The folder is written beside ``directory`` first and moved into place at the end: an
    interrupted save leaves no half-written model folder.

    Raises:
        ModelFolderError: ``directory`` is a file, or a folder with other content.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ModelFolderError(f"'{directory}' is a file, not a folder for the model")
    if directory.is_dir() and any(directory.iterdir()) and not is_model_folder(directory):
        raise ModelFolderError(f"'{directory}' is a folder with other content (not a graphmner model "
                               'folder): give a new or empty folder')
    metrics, no_scores = run_metrics(run, model)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f'.{directory.name}.', suffix='.tmp'))
    try:
        config = folder_config(model)
        (staging / CONFIG).write_text(json.dumps(config, indent=2, default=str) + '\n', encoding='utf-8')
        save_state(model, staging / WEIGHTS)
        umask = os.umask(0)
        os.umask(umask)
        (staging / WEIGHTS).chmod(0o666 & ~umask)  # safetensors writes it private; the folder is to share
        model.encoder.model.config.save_pretrained(staging / ENCODER)
        model.encoder.tokenizer.save_pretrained(staging / ENCODER)
        card = model_card(model, directory.name, config['encoder_origin'], metrics,
                          run if metrics is not None else None, no_scores)
        (staging / CARD).write_text(card, encoding='utf-8')
        directory.mkdir(exist_ok=True)
        for entry in staging.iterdir():
            target = directory / entry.name
            if target.is_dir():
                shutil.rmtree(target)  # the earlier model's encoder/: no stale tokenizer file stays
            os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


# -- reading ---------------------------------------------------------------------------------------


def read_folder_config(directory: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` of the model folder ``directory``, checked: a graphmner folder of this format."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFolderError(f"no model folder at '{directory}'" + (' (it is a file)' if directory.exists()
                                                                      else ''))
    path = directory / CONFIG
    if not path.is_file():
        raise ModelFolderError(f"'{directory}' is not a model folder: it has no {CONFIG}")
    try:
        config = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as error:
        raise ModelFolderError(f"'{path}' is not readable JSON ({_first_line(error)})") from None
    if not isinstance(config, dict) or MARKER not in config:
        kind = config.get('model_type') if isinstance(config, dict) else None
        what = f"a Hugging Face '{kind}' model folder" if kind else 'another library\'s folder'
        raise ModelFolderError(f"'{directory}' is not a graphmner model folder ({CONFIG} has no "
                               f"'{MARKER}': {what}); a graphmner folder comes from "
                               '`graphmner export-model best.pt DIR` or tagger.save_pretrained(DIR)')
    written = config[MARKER]
    if written != FOLDER_FORMAT:
        version = config.get('graphmner_version', 'unknown')
        raise ModelFolderError(f"'{directory}' was written by graphmner {version} (model folder format "
                               f'{written}); this is graphmner {__version__} (format {FOLDER_FORMAT}): '
                               'export it again from its best.pt, or load it with that version')
    missing = [key for key in ('model', 'model_config', 'labels') if key not in config]
    if missing:
        raise ModelFolderError(f"'{path}' lacks {', '.join(missing)}")
    return config


def load_pretrained(directory: str | os.PathLike, map_location: str | torch.device = 'cpu') -> MNERModel:
    """Rebuilds the model of the model folder ``directory`` (see :func:`save_pretrained`); its
    encoder is read from the folder's ``encoder/``.

    Raises:
        ModelFolderError: not a folder, not a graphmner model folder, another folder format, a
            model this graphmner lacks, or files that do not fit its ``config.json``.
    """
    from . import available, build, model_class  # the registry imports this module

    directory = Path(directory)
    config = read_folder_config(directory)
    if config['model'] not in available():
        raise ModelFolderError(f"'{directory}' holds a '{config['model']}' model, which this graphmner does "
                               f"not have (available: {', '.join(available())})")
    weights, encoder = directory / WEIGHTS, directory / ENCODER
    if not weights.is_file():
        raise ModelFolderError(f"'{directory}' has no {WEIGHTS} (the model's weights)")
    if not (encoder / CONFIG).is_file():
        raise ModelFolderError(f"'{directory}' has no {ENCODER}/{CONFIG} (its text encoder's config and "
                               'tokenizer)')
    values: Mapping[str, Any] = {**config['model_config'], 'encoder': str(encoder)}
    try:
        with weights_loaded_later():
            model = build(config['model'], config['labels'], **values)
    except (TypeError, ValueError, OSError) as error:
        cls = model_class(config['model'])
        raise ModelFolderError(f"'{directory}' holds a {cls.__name__} this graphmner cannot build "
                               f'({_first_line(error)})') from None
    load_state(model, weights, map_location)
    data = config.get('data_config')
    try:
        model.data_config = None if data is None else DataConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ModelFolderError(f"'{directory}' holds a data config this graphmner cannot read "
                               f'({_first_line(error)})') from None
    return model


def export_checkpoint(checkpoint: str | os.PathLike, directory: str | os.PathLike) -> Path:
    """Converts a run's checkpoint (``best.pt``) into a model folder; the card takes its scores
    from the run folder's ``metrics.json`` when the checkpoint sits in one."""
    from . import load  # the registry imports this module

    checkpoint = Path(checkpoint)
    model = load(checkpoint)
    run = checkpoint.parent if (checkpoint.parent / 'metrics.json').is_file() else None
    return save_pretrained(model, directory, run=run)
