"""How a model's training graphs were built, saved in its checkpoint.

A checkpoint carries everything needed to rebuild the graph it was trained on:
:class:`DataConfig` is that record (``model.data_config``), written by
:func:`graphmner.train.experiment.run` and read back by
:func:`graphmner.models.load`, so that :class:`graphmner.predict.Tagger` and a
cross-domain test build new graphs as the training graphs were built.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .options import GraphOptions
from .schema import AUX, IMAGE, WORD


@dataclass
class DataConfig:
    """The data contract of a trained model.

    Args:
        dataset (str): the dataset it was trained on: a name, or a folder's absolute path.
        options (GraphOptions): how its graphs were built.
        tokenizer (str): the dataset's tokenizer style, which raw text to tag is split with.
        captions (str, optional): the caption file its aux caption words came from (None when
            its training tweets had no aux words).
        visual_backend (str): what made its visual features (``g.visual_backend``; empty for a
            model that reads no image).
        visual_widths (dict): feature width per visual node type, as the training graphs hold them.
        images_seen (int): training tweets that had a usable image.
    """

    dataset: str = ''
    options: GraphOptions = field(default_factory=GraphOptions)
    tokenizer: str = 'twitter2015'
    captions: str | None = None
    visual_backend: str = ''
    visual_widths: dict[str, int] = field(default_factory=dict)
    images_seen: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain values (what a checkpoint stores; ``torch.load(weights_only=True)`` reads them)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DataConfig:
        """Reads :meth:`to_dict`'s values, and the untyped dict of a format-2 checkpoint (no
        visual backend or widths recorded: they are left empty)."""
        values = dict(values)
        options = {key: tuple(value) if key in ('aux_sources', 'cascades') and value is not None else value
                   for key, value in (values.pop('options', None) or {}).items()}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(options=GraphOptions(**options), **{k: v for k, v in values.items() if k in known})

    @classmethod
    def of_training(cls, dataset: str, train_graphs: Any, captions: str | None = None) -> DataConfig:
        """The record of a run's training split of ``dataset`` (a loaded dataset with its build
        report), built with the caption file ``captions`` (None: the dataset's own, if any)."""
        from ..data.datasets import dataset_definition, is_folder_dataset

        report = train_graphs.report
        with_aux = report.get('tweets_with_aux', 0) > 0
        if not with_aux:
            captions = None
        elif captions is not None:
            captions = str(Path(captions).resolve())
        elif dataset == 'demo':
            from ..data.demo import DEMO_CAPTIONS
            captions = str(DEMO_CAPTIONS)
        backend = report.get('visual_backend', '')
        # Without a usable image in the split, its first graph shows the widths (no search).
        with_image = report.get('images_missing', 0) < report.get('tweets', 0)
        searched = train_graphs if with_image else [train_graphs[i] for i in range(min(1, len(train_graphs)))]
        return cls(
            dataset=str(Path(dataset).resolve()) if is_folder_dataset(dataset) else dataset,
            options=train_graphs.options, tokenizer=dataset_definition(dataset).tokenizer,
            captions=captions, visual_backend=backend if isinstance(backend, str) else '; '.join(backend),
            visual_widths=visual_widths(searched),
            images_seen=report.get('tweets', 0) - report.get('images_missing', 0))


def visual_widths(graphs: Iterable[Any]) -> dict[str, int]:
    """Feature width per visual node type of the first graph with a usable image (of the first
    graph when none has one)."""
    first = None
    for g in graphs:
        first = first if first is not None else g
        if IMAGE in g.node_types and not bool(g[IMAGE].missing.any()):
            first = g
            break
    if first is None:
        return {}
    return {t: int(first[t].x.shape[-1]) for t in first.node_types
            if t not in (WORD, AUX) and 'x' in first[t]}
