"""Datasets of tweet graphs: the built-in demo, Twitter-2015 and Twitter-2017.

:func:`load_dataset` reads a CoNLL split, extracts (or reads from the feature
cache) the frozen visual features of each tweet's image, builds one
:class:`~torch_geometric.data.HeteroData` per tweet and caches the built graphs
in PyG's raw / processed manner, keyed by every setting that changes them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch_geometric.data import HeteroData, InMemoryDataset

from ..data.conll import Tweet, read_conll
from ..data.datasets import split_path
from .builder import BUILDER_VERSION, GraphBuilder
from .options import GraphOptions
from .schema import IMAGE, SCHEMA_VERSION

log = logging.getLogger('graphmner.data')

#: Where built graphs and extracted features are cached unless told otherwise.
DEFAULT_CACHE = Path(os.environ.get('GRAPHMNER_CACHE',
                                    Path(__file__).resolve().parents[2] / 'graphs' / 'cache'))


class TweetGraphs(InMemoryDataset):
    """One split of tweet graphs (PyG :class:`InMemoryDataset`).

    Args:
        conll_path (Path): the split's CoNLL file (the dataset's only raw file).
        cache_root (Path): folder for ``processed/`` graphs.
        build (Callable): turns tweets into ``(graphs, report)``; the report
            (counts of missing images, aux words, ...) is kept beside the graphs.
        key (str): hash of the build settings; part of the processed file name.
        transform (Callable, optional): applied on access (e.g. ``KeepRelations``).
        force_reload (bool, optional): rebuild even if cached. (default: :obj:`False`)
    """

    def __init__(self, conll_path: Path, cache_root: Path,
                 build: Callable[[list[Tweet]], tuple[list[HeteroData], dict]], key: str,
                 transform: Callable | None = None, force_reload: bool = False):
        self.conll_path = Path(conll_path)
        self._build = build
        self._key = key
        self.report: dict[str, Any] = {}
        super().__init__(str(cache_root), transform=transform, force_reload=force_reload, log=False)
        self.load(self.processed_paths[0], data_cls=HeteroData)
        report = Path(self.processed_paths[0]).with_suffix('.json')
        if report.exists():
            self.report = json.loads(report.read_text())

    @property
    def raw_dir(self) -> str:
        return str(self.conll_path.parent)

    @property
    def raw_file_names(self) -> list[str]:
        return [self.conll_path.name]

    @property
    def processed_file_names(self) -> list[str]:
        stat = self.conll_path.stat()
        stamp = hashlib.sha256(f'{self.conll_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}'.encode())
        return [f'{self.conll_path.stem}-{stamp.hexdigest()[:8]}-{self._key}.pt']

    def download(self) -> None:
        raise FileNotFoundError(f"CoNLL file not found: '{self.conll_path}' (set --data-root to the "
                                "folder holding twitter2015/ and twitter2017/)")

    def process(self) -> None:
        tweets = read_conll(self.conll_path)
        graphs, self.report = self._build(tweets)
        self.save(graphs, self.processed_paths[0])
        Path(self.processed_paths[0]).with_suffix('.json').write_text(json.dumps(self.report, indent=2))


def load_dataset(name: str, split: str, data_root: str | os.PathLike | None = None,
                 image_root: str | os.PathLike | None = None,
                 captions: str | os.PathLike | None = None, **options: Any) -> TweetGraphs:
    """Tweet graphs of one split (**fixed** signature).

    Args:
        name (str): ``'demo'``, ``'twitter2015'`` or ``'twitter2017'``.
        split (str): ``'train'``, ``'dev'`` or ``'test'``.
        data_root (path, optional): folder holding ``twitter2015/`` and
            ``twitter2017/`` (not needed for the demo).
        image_root (path, optional): folder of the tweets' images
            (``<image_id>.jpg``); the demo uses scikit-image's sample photos.
            Without it every tweet's image is missing.
        captions (path, optional): BLIP-2 caption file (``<image_id>.jpg :<caption>``)
            giving ``aux`` caption words; the demo has its own.
        The demo's extractor defaults are :data:`~graphmner.data.demo.DEMO_OPTIONS`
        (random vision and detector weights, announced by warnings).
        **options: :class:`GraphOptions` fields, plus ``transform`` (applied on
            access), ``cache_dir`` and ``force_reload``.
    """
    if name == 'demo':
        from ..data.demo import DEMO_CAPTIONS, DEMO_OPTIONS, demo_image_root
        options = {**DEMO_OPTIONS, **options}
        image_root = demo_image_root() if image_root is None else image_root
        captions = DEMO_CAPTIONS if captions is None else captions
    transform = options.pop('transform', None)
    cache_dir = Path(options.pop('cache_dir', DEFAULT_CACHE))
    force_reload = options.pop('force_reload', False)
    known = set(GraphOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"Unknown dataset option(s) {unknown}; valid: {sorted(known)}")
    graph_options = GraphOptions(**options)
    conll = split_path(name, split, data_root)
    builder = GraphBuilder(graph_options, image_root=image_root, captions=captions,
                           feature_cache=cache_dir / 'features')
    key = hashlib.sha256(f'v{SCHEMA_VERSION}.{BUILDER_VERSION}:{graph_options.key()}:{image_root}:{captions}'
                         .encode()).hexdigest()[:16]
    dataset = TweetGraphs(conll, cache_dir / name, builder, key, transform=transform,
                          force_reload=force_reload)
    missing = dataset.report.get('images_missing')
    if missing:
        log.info('%s/%s: %d of %d tweets have no usable image', name, split, missing, len(dataset))
    return dataset


def visual_width(graphs: Iterable[HeteroData]) -> int | None:
    """The width of the graphs' visual features (``image.x``: 2048 for ResNet,
    the weight-free backend's own), or None if no graph has an image node;
    models with a ``visual_dim`` setting are built with it."""
    for g in graphs:
        if IMAGE in g.node_types and 'x' in g[IMAGE]:
            return int(g[IMAGE].x.shape[-1])
    return None
