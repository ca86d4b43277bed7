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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch_geometric.data import HeteroData, InMemoryDataset

from .conll import Tweet, read_conll

log = logging.getLogger('graphmner.data')

DATASETS = ('demo', 'twitter2015', 'twitter2017')
SPLITS = ('train', 'dev', 'test')
_SPLIT_FILES = {'train': 'train.txt', 'dev': 'valid.txt', 'test': 'test.txt'}

#: Where built graphs and extracted features are cached unless told otherwise.
DEFAULT_CACHE = Path(os.environ.get('GRAPHMNER_CACHE',
                                    Path(__file__).resolve().parents[2] / 'graphs' / 'cache'))


@dataclass
class GraphOptions:
    """Every setting that changes the built graphs (part of the cache key).

    Visual extraction runs only for tweets whose image is found under
    ``image_root``; without an image root every tweet gets ``image.missing``.
    """

    vision_arch: str = 'resnet50'               # 'resnet50' | 'resnet152'
    vision_weights: str | None = 'imagenet'  # 'imagenet' (from the torch cache), a file, or None (random)
    detector_weights: str = 'yolov8n.pt'        # a .pt file, or a .yaml for random weights
    top_k: int = 4                              # objects kept per image
    detector_conf: float = 0.25
    spacy_model: str = 'en_core_web_sm'         # name or path, for UMGF's noun phrases
    aux_sources: tuple[str, ...] = ('caption', 'tag', 'ocr')  # order of aux words
    ocr: bool = False                           # run Tesseract (needs it installed)
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def _conll_path(name: str, split: str, data_root: str | os.PathLike | None) -> Path:
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset '{name}'; available: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"Unknown split '{split}'; use one of {', '.join(SPLITS)}")
    if name == 'demo':
        from .demo import demo_split_path
        return demo_split_path(split)
    if data_root is None:
        raise ValueError(f"'{name}' is read from a local copy: set data_root (--data-root) to the "
                         f"folder holding {name}/train.txt, valid.txt, test.txt")
    path = Path(data_root).expanduser() / name / _SPLIT_FILES[split]
    if not path.exists():
        raise FileNotFoundError(f"'{path}' does not exist (check --data-root: it must hold "
                                f"{name}/{_SPLIT_FILES[split]})")
    return path


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
        from .demo import DEMO_CAPTIONS, DEMO_OPTIONS, demo_image_root
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
    conll = _conll_path(name, split, data_root)
    from ..graph.builder import BUILDER_VERSION, GraphBuilder  # the graph package imports this one
    from ..graph.schema import SCHEMA_VERSION

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
