"""Datasets of tweet graphs: the built-in demo, Twitter-2015 and Twitter-2017.

:func:`load_dataset` reads a CoNLL split, extracts (or reads from the feature
cache) the frozen visual features of each tweet's image, builds one
:class:`~torch_geometric.data.HeteroData` per tweet and caches the built graphs
in PyG's raw / processed manner, keyed by everything that changes them: the
CoNLL file's and the caption file's contents, the image folder, every
:class:`GraphOptions` field and the schema and builder versions (and nothing
else: moving or touching a file does not rebuild).

Processes that load one dataset at once take turns (a file lock per dataset
folder): the first builds, the others read what it wrote. Cache files are
written whole or not at all (a temporary file, then a rename); an entry that
cannot be read back is logged and rebuilt.

A split is held in memory (:class:`TweetGraphs`, one collated PyG store) or,
with ``on_disk=True``, built in chunks into a graph file and read one graph
at a time (:class:`StreamedTweetGraphs`): for corpora larger than memory.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock
from torch_geometric.data import HeteroData, InMemoryDataset

from ..data.conll import Tweet, read_conll
from ..data.datasets import dataset_labels, is_folder_dataset, split_path
from ..features.cache import STORAGE_DTYPE as FEATURE_STORAGE_DTYPE
from ..io import atomic_save, atomic_write_text, remove_partial_writes
from .builder import BUILDER_VERSION, GraphBuilder
from .options import GraphOptions
from .schema import IMAGE, SCHEMA_VERSION
from .storage import GraphFile, GraphFileWriter

log = logging.getLogger('graphmner.data')

#: Where built graphs and extracted features are cached unless told otherwise: ``graphs/cache``
#: under the working directory (a checkout's own graphs/ folder when run from it), or $GRAPHMNER_CACHE.
DEFAULT_CACHE = Path(os.environ.get('GRAPHMNER_CACHE', Path('graphs') / 'cache'))


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file's bytes (a cache key of its content)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


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
        # The content, not the path or the time stamp, keys the graphs (a missing file is
        # reported by download()).
        self._conll_digest = file_sha256(self.conll_path) if self.conll_path.is_file() else ''
        self._build = build
        self._key = key
        self.report: dict[str, Any] = {}
        #: Whether this instance built the graphs (False: read from the cache).
        self.built = False
        lock = Path(cache_root) / 'processed' / '.lock'
        lock.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(lock):  # another process building this dataset finishes first
            # Holding the lock, no other writer is at work here: a temporary file is a killed build's.
            remove_partial_writes(lock.parent)
            super().__init__(str(cache_root), transform=transform, force_reload=force_reload, log=False)
            self._load_or_rebuild()

    def _load_or_rebuild(self) -> None:
        path = Path(self.processed_paths[0])
        try:
            self.load(str(path), data_cls=HeteroData)
            report = json.loads(path.with_suffix('.json').read_text())
            if len(self) != report['tweets']:
                raise ValueError(f"{len(self)} graphs for {report['tweets']} tweets")
        except Exception as error:  # cut off, garbled or incomplete: never used, rebuilt
            log.warning("graph cache entry '%s' is unusable (%s: %s): rebuilding it", path,
                        type(error).__name__, str(error).splitlines()[0] if str(error) else '')
            self.process()
            self.load(str(path), data_cls=HeteroData)
            report = self.report
        self.report = report

    @property
    def raw_dir(self) -> str:
        return str(self.conll_path.parent)

    @property
    def raw_file_names(self) -> list[str]:
        return [self.conll_path.name]

    @property
    def processed_file_names(self) -> list[str]:
        return [f'{self.conll_path.stem}-{self._conll_digest[:16]}-{self._key}.pt']

    def download(self) -> None:
        raise FileNotFoundError(f"CoNLL file not found: '{self.conll_path}' (set --data-root to the "
                                "folder holding twitter2015/ and twitter2017/)")

    def process(self) -> None:
        tweets = read_conll(self.conll_path)
        graphs, self.report = self._build(tweets)
        self.built = True
        path = Path(self.processed_paths[0])
        atomic_write_text(path.with_suffix('.json'), json.dumps(self.report, indent=2))
        # What InMemoryDataset.save writes, renamed into place last: the graphs file is the
        # commit point (PyG rebuilds when it is missing).
        data, slices = self.collate(graphs)
        atomic_save((data.to_dict(), slices, data.__class__), path)


def merge_reports(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Adds the build report of one chunk of a split to ``total``: counts add
    up, mappings merge key by key, other values that differ between chunks
    become the list of them."""
    for key, value in part.items():
        if key not in total:
            total[key] = copy.deepcopy(value)
        elif isinstance(value, dict):
            merge_reports(total[key], value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total[key] += value
        elif total[key] != value and not (isinstance(total[key], list) and value in total[key]):
            total[key] = [*(total[key] if isinstance(total[key], list) else [total[key]]), value]
    return total


def report_path(graph_file: Path) -> Path:
    """The build report beside a graph file (``<name>.graphs.json``)."""
    return graph_file.with_name(f'{graph_file.name}.json')


class StreamedTweetGraphs(GraphFile):
    """One split of tweet graphs in a graph file, read from disk on access
    (:class:`~graphmner.graph.storage.GraphFile`): memory holds one chunk of
    tweets while building and 8 bytes a graph while reading.

    Args:
        conll_path (Path): the split's CoNLL file.
        cache_root (Path): folder for ``processed/`` graph files.
        build (Callable): turns tweets into ``(graphs, report)``; called on
            chunks of ``chunk_size`` tweets, the reports merged
            (:func:`merge_reports`).
        key (str): hash of the build settings; part of the file name.
        transform (Callable, optional): applied on access.
        force_reload (bool, optional): rebuild even if cached. (default: :obj:`False`)
        chunk_size (int, optional): tweets built at once. (default: :obj:`2048`)
    """

    def __init__(self, conll_path: Path, cache_root: Path,
                 build: Callable[[list[Tweet]], tuple[list[HeteroData], dict]], key: str,
                 transform: Callable | None = None, force_reload: bool = False, chunk_size: int = 2048):
        conll_path = Path(conll_path)
        if not conll_path.is_file():
            raise FileNotFoundError(f"CoNLL file not found: '{conll_path}' (set --data-root to the folder "
                                    'holding twitter2015/ and twitter2017/)')
        name = f'{conll_path.stem}-{file_sha256(conll_path)[:16]}-{key}.graphs'
        path = Path(cache_root) / 'processed' / name
        self.report: dict[str, Any] = {}
        #: Whether this instance built the graphs (False: read from the cache).
        self.built = False
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path.parent / '.lock'):  # another process building this dataset finishes first
            remove_partial_writes(path.parent)
            try:
                if force_reload:
                    raise FileNotFoundError('rebuild asked for (force_reload)')
                super().__init__(path, transform)
                self.report = json.loads(report_path(path).read_text())
                if len(self) != self.report['tweets']:
                    raise ValueError(f"{len(self)} graphs for {self.report['tweets']} tweets")
            except Exception as error:  # missing, cut off or garbled: never used, rebuilt
                if not force_reload:
                    log.info("graph file '%s' is not usable (%s: %s): building it", path,
                             type(error).__name__, str(error).splitlines()[0] if str(error) else '')
                self._build(conll_path, path, build, chunk_size)
                super().__init__(path, transform)

    def _build(self, conll_path: Path, path: Path, build: Callable, chunk_size: int) -> None:
        tweets = read_conll(conll_path)
        report: dict[str, Any] = {}
        with GraphFileWriter(path) as writer:
            for start in range(0, len(tweets), chunk_size):
                graphs, part = build(tweets[start:start + chunk_size])
                for graph in graphs:
                    writer.append(graph)
                merge_reports(report, part)
            report.setdefault('tweets', 0)
            # Before the graph file is renamed into place (the commit point).
            atomic_write_text(report_path(path), json.dumps(report, indent=2))
        self.report = report
        self.built = True


def load_dataset(name: str, split: str, data_root: str | os.PathLike | None = None,
                 image_root: str | os.PathLike | None = None,
                 captions: str | os.PathLike | None = None, images: bool = True,
                 **options: Any) -> TweetGraphs:
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
        images (bool, optional): :obj:`False` reads no image at all (every
            tweet's image missing), for models that read none: no extractor
            runs. (default: :obj:`True`)
        **options: :class:`GraphOptions` fields, plus ``transform`` (applied on
            access), ``cache_dir``, ``force_reload`` and ``on_disk`` (build
            a graph file and stream the graphs from disk:
            :class:`StreamedTweetGraphs`; default: in memory).

    ``name`` may also be a folder holding ``train.txt``, ``valid.txt`` and
    ``test.txt``: its label set comes from its training split
    (:func:`~graphmner.data.datasets.dataset_labels`).
    """
    if name == 'demo':
        from ..data.demo import DEMO_CAPTIONS, DEMO_OPTIONS, demo_image_root
        options = {**DEMO_OPTIONS, **options}
        image_root = demo_image_root() if image_root is None else image_root
        captions = DEMO_CAPTIONS if captions is None else captions
    if not images:
        image_root = None
    transform = options.pop('transform', None)
    cache_dir = Path(options.pop('cache_dir', DEFAULT_CACHE))
    force_reload = options.pop('force_reload', False)
    split_class = StreamedTweetGraphs if options.pop('on_disk', False) else TweetGraphs
    known = set(GraphOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"Unknown dataset option(s) {unknown}; valid: {sorted(known)}")
    graph_options = GraphOptions(**options)
    conll = split_path(name, split, data_root)
    labels = dataset_labels(name, data_root)
    builder = GraphBuilder(graph_options, image_root=image_root, captions=captions,
                           feature_cache=cache_dir / 'features', labels=labels)
    # The captions by content: a caption file edited in place must rebuild, a moved one need not.
    if captions is not None and not Path(captions).is_file():
        raise FileNotFoundError(f"caption file '{captions}' does not exist (--captions)")
    images = None if image_root is None else Path(image_root).resolve()
    captions_digest = None if captions is None else file_sha256(captions)
    # The feature cache's storage dtype rounds the visual features the graphs hold.
    settings = f'{graph_options.key()}:{images}:{captions_digest}:{labels}:{FEATURE_STORAGE_DTYPE}'
    key = hashlib.sha256(f'v{SCHEMA_VERSION}.{BUILDER_VERSION}:{settings}'.encode()).hexdigest()[:16]
    folder = name if not is_folder_dataset(name) else \
        f'{Path(name).name}-{hashlib.sha256(str(Path(name).resolve()).encode()).hexdigest()[:8]}'
    dataset = split_class(conll, cache_dir / folder, builder, key, transform=transform,
                          force_reload=force_reload)
    dataset.labels = labels
    dataset.options = graph_options
    missing = dataset.report.get('images_missing')
    if missing and images:  # without images nothing was read: no image is "unusable"
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
