"""The model card (``README.md``) of a model folder: what a reader of the folder needs before
using it (the dataset, the scores and the run they come from, the settings, what the model reads).

Paths of the machine it was trained on are shown by their last part only (a dataset folder, a
local encoder): the card is written to be shared.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ..data.labels import split_label
from ..graph import schema
from ..version import __version__
from .base import MNERModel

#: What each node type carries, for "what the model reads".
NODE_MEANING = {
    schema.WORD: 'the tweet\'s words (read by the fine-tuned text encoder)',
    schema.IMAGE: 'the photo as a whole (global feature; marks a missing image)',
    schema.REGION: 'cells of the photo\'s feature map',
    schema.SCALE: 'cells of the photo\'s feature pyramid (several scales)',
    schema.OBJECT: 'objects detected in the photo',
    schema.AUX: 'image text: words of the photo\'s caption, OCR or object tags',
}


def shown(value: str | os.PathLike | None) -> str:
    """A name as the card shows it: a path by its last part, a hub name as it is."""
    if value is None or value == '':
        return 'none'
    text = str(value)
    if Path(text).is_absolute() or text.startswith(('.', '~')) or os.sep in text and Path(text).exists():
        return Path(text).name
    return text


def _read_node_types(model: MNERModel) -> list[str]:
    kept = {schema.WORD, *model.node_types, *(t for src, _, dst in model.relations for t in (src, dst))}
    if model.needs_image_features(model.config):  # every graph keeps an image node; these read it
        kept.add(schema.IMAGE)
    return [t for t in NODE_MEANING if t in kept] + sorted(kept - set(NODE_MEANING))


def _scores_table(metrics: dict[str, Any]) -> list[str]:
    rows = ['| split | precision | recall | F1 | entities |', '|---|---:|---:|---:|---:|']
    for split in ('dev', 'test'):
        s = metrics.get(split)
        if isinstance(s, dict) and 'f1' in s:
            rows.append(f"| {split} | {100 * s['precision']:.2f} | {100 * s['recall']:.2f} | "
                        f"{100 * s['f1']:.2f} | {s.get('support', '')} |")
    for view, s in (metrics.get('test_views') or {}).items():
        rows.append(f"| test, {view} view | {100 * s['precision']:.2f} | {100 * s['recall']:.2f} | "
                    f"{100 * s['f1']:.2f} | {s.get('support', '')} |")
    per_type = (metrics.get('test') or {}).get('per_type') or {}
    if per_type:
        rows += ['', 'Test F1 per entity type: ' + ', '.join(
            f"{name} {100 * s['f1']:.2f}" for name, s in per_type.items()) + '.']
    return rows


def _settings_table(values: dict[str, Any]) -> list[str]:
    return ['| setting | value |', '|---|---|'] + [f'| `{key}` | `{value}` |'
                                                    for key, value in values.items()]


def model_card(model: MNERModel, folder_name: str, encoder: str, metrics: dict[str, Any] | None,
               run: str | os.PathLike | None, no_scores: str) -> str:
    """The card of ``model`` saved as the folder ``folder_name``.

    Args:
        model: the model, its ``data_config`` included.
        folder_name: the folder's name, for the usage example.
        encoder: the encoder it was fine-tuned from.
        metrics: the ``metrics.json`` of its run, or None.
        run: the run folder of ``metrics``.
        no_scores: why there are no scores (when ``metrics`` is None).
    """
    data = model.data_config
    dataset = shown(data.dataset) if data is not None and data.dataset else 'not recorded'
    types = ', '.join(dict.fromkeys(split_label(label)[1] for label in model.labels
                                    if label != 'O')) or 'none'
    lines = ['---', 'library_name: graphmner', 'pipeline_tag: token-classification',
             f'tags: [graphmner, named-entity-recognition, multimodal, {model.name}]', '---', '',
             f'# {model.name} tagger for multimodal named entities ({folder_name})', '',
             f'A graphmner `{model.name}` model ({type(model).__name__}) trained on **{dataset}**: it tags '
             f'{types} (BIO labels, CRF over `{model.config.tag_scheme}` tags). Written by graphmner '
             f'{__version__}.', '',
             '## Use', '', '```python', 'from graphmner import Tagger',
             f"tagger = Tagger.from_pretrained('{folder_name}')",
             "print(tagger.predict('Barack Obama visits Paris with the Lakers', image='photo.jpg'))", '```',
             '', f'or `graphmner predict {folder_name} --text "Barack Obama visits Paris"`.', '',
             '## Scores', '']
    if metrics is not None:
        finished = f", finished {metrics['finished']}" if metrics.get('finished') else ''
        lines += [f"Span-level micro scores (conlleval chunking) of the run `{shown(run)}` "
                  f"(its metrics.json; best dev epoch, seed {metrics.get('seed', '?')}{finished}):", '']
        lines += _scores_table(metrics)
    else:
        lines.append(f'No scores: {no_scores}.')
    lines += ['', '## What the model reads', '']
    for t in _read_node_types(model):
        lines.append(f'- `{t}` nodes: {NODE_MEANING.get(t, "a node type of its graph")}')
    lines.append('- relations: ' + ', '.join(f'`{s}-{r}->{d}`' for s, r, d in model.relations))
    if model.needs_image_features(model.config):
        backend = data.visual_backend if data is not None and data.visual_backend else 'not recorded'
        seen = f'; {data.images_seen} training tweets had a usable image' if data is not None else ''
        lines.append(f'- the photo: yes, visual features from **{backend}**{seen}')
        if data is not None:
            o = data.options
            lines.append(f'- image extractors: vision `{o.vision_arch}` '
                         f'(weights `{shown(o.vision_weights)}`), '
                         f'detector `{shown(o.detector_weights)}` (top {o.top_k} objects)')
    sources = model.aux_sources(model.config)
    if not model.needs_image_features(model.config):
        lines.append('- the photo: only as image text, no visual features' if sources else
                     '- the photo: no (a text-only model: an image given to it is not read)')
    if sources:
        captions = shown(data.captions) if data is not None else 'not recorded'
        lines.append(f"- image text: {', '.join(sources)} (captions from `{captions}`)")
    if len(model.views) > 1:
        lines.append(f"- inference views: {', '.join(model.views)} (`{model.views[0]}` in force)")
    split = f'raw text is split in the `{data.tokenizer}` tokenizer style' if data is not None else \
        'how its training text was split is not recorded'
    lines += [f'- text encoder: fine-tuned from `{shown(encoder)}` (at most {model.config.max_length} '
              f'subwords); {split}', '', '## Settings', '']
    config = {k: v for k, v in dataclasses.asdict(model.config).items() if k != 'encoder'}
    lines += _settings_table(config)
    train = ((metrics or {}).get('settings') or {}).get('train')
    if isinstance(train, dict):
        lines += ['', 'Training:', ''] + _settings_table(train)
    lines += ['', '## Files', '',
              '- `config.json`: model name, model and data config, labels, graphmner version, '
              'folder format',
              '- `model.safetensors`: all weights (the fine-tuned encoder included)',
              '- `encoder/`: the text encoder\'s config and tokenizer', '- `README.md`: this card', '']
    return '\n'.join(lines)
