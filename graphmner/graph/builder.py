"""Builds the schema-v1 :class:`~torch_geometric.data.HeteroData` of one tweet
from its words, the frozen features of its image and its image-to-text words.

Every graph carries every node type, with zero rows where a tweet has none, so
that any mix of graphs batches. A tweet without a usable image keeps its
``image`` node (zero feature, ``missing=True``) and no region, scale or object
node: no fake visual evidence. The visual nodes are written by node type, as
:data:`~graphmner.features.types.VISUAL_NODES` declares them. Of the edges a
graph stores only the relations of :data:`~graphmner.graph.schema.STORED` (the
noun-phrase grounding); the others follow from the node counts
(:func:`relation_edges`) and are built on demand.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.conll import Tweet
from ..data.labels import BIO_LABELS, repair_iob2
from ..features.types import VISUAL_NODES, ImageFeatures, NodeFeatures, VisualWidths
from . import schema
from .options import GraphOptions

log = logging.getLogger('graphmner.data')

#: Bumped whenever the builder's output changes, so cached graphs are rebuilt.
BUILDER_VERSION = 4


def chain(n: int) -> Tensor:
    """Edges i -> i+1 over n nodes: ``[2, max(n-1, 0)]``."""
    i = torch.arange(max(n - 1, 0))
    return torch.stack([i, i + 1])


def all_pairs(n: int) -> Tensor:
    """Every ordered pair i -> j with i != j over n nodes: ``[2, n*(n-1)]``."""
    i = torch.arange(n)
    src, dst = i.repeat_interleave(n), i.repeat(n)
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])


def complete_bipartite(n_src: int, n_dst: int) -> Tensor:
    """Every source -> every destination: ``[2, n_src * n_dst]``."""
    return torch.stack([torch.arange(n_src).repeat_interleave(n_dst),
                        torch.arange(n_dst).repeat(n_src)])


def relation_edges(data: HeteroData, edge_type: tuple[str, str, str]) -> Tensor:
    """The edges of a relation built on demand, by its rule in
    :data:`schema.RULES`, from the graph's node counts (a type the graph lacks
    counts 0): ``[2, E]``.

    Raises:
        ValueError: a stored relation (its edges are not a rule's) or an unknown one.
    """
    rule = schema.RULES.get(edge_type)
    if rule is None or rule == 'stored':
        raise ValueError(f'{edge_type} is not built on demand; those are '
                         f"{[r for r, k in schema.RULES.items() if k != 'stored']}")
    src, _, dst = edge_type
    n_src, n_dst = (int(data[t].num_nodes or 0) if t in data.node_types else 0 for t in (src, dst))
    if rule == 'chain':
        return chain(n_src)
    if rule == 'all_pairs':
        return all_pairs(n_src)
    return complete_bipartite(n_src, n_dst)


def build_graph(tweet: Tweet, features: ImageFeatures | None = None, *,
                aux: Sequence[tuple[str, str]] = (), grounds: Tensor | None = None,
                labels: Sequence[str] = BIO_LABELS,
                widths: VisualWidths | None = None, visual_backend: str = '') -> HeteroData:
    """One tweet graph.

    Args:
        tweet (Tweet): words, labels and image id.
        features (ImageFeatures, optional): the image's frozen features, or
            :obj:`None` when the tweet has no usable image. (default: :obj:`None`)
        aux (Sequence[tuple[str, str]], optional): image-to-text words as
            ``(word, source)`` with source in :data:`schema.AUX_SOURCES`. (default: :obj:`()`)
        grounds (Tensor, optional): ``[2, E]`` object -> word edges from the UMGF
            grounding rule; :obj:`None` treats every object as general (connected
            to every word). (default: :obj:`None`)
        labels (Sequence[str], optional): label set giving ``word.y`` ids.
            (default: :obj:`BIO_LABELS`)
        widths (VisualWidths, optional): the vision backend's widths, which
            give the (empty) visual nodes their width when ``features`` is
            :obj:`None` so that the graph batches with graphs that have an
            image; without them such a graph's visual ``x`` is 0 wide, a
            text-only graph that batches only with others like it.
            (default: :obj:`None`)
        visual_backend (str, optional): what made the visual features (e.g.
            ``'resnet50 (imagenet); yolov8n.pt'``), kept as ``g.visual_backend``
            for pictures and exports. (default: :obj:`''`, not recorded)
    """
    n = len(tweet.words)
    if n == 0:
        raise ValueError(f"Tweet '{tweet.image_id}' has no words; every graph needs at least one")
    label_id = {label: i for i, label in enumerate(labels)}
    try:
        # Training targets are IOB2-repaired; ``g.labels`` keeps the file's labels for scoring.
        y = torch.tensor([label_id[label] for label in repair_iob2(tweet.labels)], dtype=torch.long)
    except KeyError as error:
        raise ValueError(f"Tweet '{tweet.image_id}' has label {error} outside the label set "
                         f"{list(labels)}") from None
    g = HeteroData()
    g[schema.WORD].num_nodes = n
    g[schema.WORD].y = y
    g[schema.WORD].position = torch.arange(n)

    missing = features is None
    names = {}  # graph-level '<type>_names', set with the other lists below
    for node_type, spec in VISUAL_NODES.items():
        if missing:
            nodes = spec.empty(widths.x[node_type] if widths is not None else 0)
        else:
            nodes = features[node_type]
        store = g[node_type]
        store.x = nodes.x.float()
        if node_type == schema.IMAGE:
            store.missing = torch.tensor([missing])
        for key, (_, dtype) in spec.attrs.items():
            store[key] = nodes[key].to(dtype)
        if spec.names:
            names[f'{node_type}_names'] = list(nodes.names)
    n_object = g[schema.OBJECT].x.shape[0]

    sources = {s: i for i, s in enumerate(schema.AUX_SOURCES)}
    try:
        aux_source = torch.tensor([sources[s] for _, s in aux], dtype=torch.long)
    except KeyError as error:
        raise ValueError(f"Unknown aux source {error}; valid: {list(schema.AUX_SOURCES)}") from None
    g[schema.AUX].num_nodes = len(aux)
    g[schema.AUX].source = aux_source

    if grounds is None:
        grounds = complete_bipartite(n_object, n)
    elif grounds.numel() and (grounds[0].max() >= n_object or grounds[1].max() >= n):
        raise ValueError(f"'grounds' edges point outside the graph: {n_object} objects, {n} words, "
                         f"got max indices ({int(grounds[0].max())}, {int(grounds[1].max())})")
    grounds = grounds.long().view(2, -1)

    # The stored relations only; the rest are built on demand (relation_edges).
    g[schema.GROUNDS].edge_index = grounds
    g[schema.REV_GROUNDS].edge_index = grounds.flip(0)

    g.words = list(tweet.words)
    g.labels = list(tweet.labels)
    g.aux_words = [word for word, _ in aux]
    for key, value in names.items():
        g[key] = value
    g.image_id = tweet.image_id
    g.visual_backend = visual_backend
    return g


def graph_features(g: HeteroData) -> ImageFeatures | None:
    """The frozen visual features a built graph holds, by node type (:obj:`None`
    for a missing image): what :func:`build_graph` was given."""
    if bool(g[schema.IMAGE].missing.any()):
        return None
    return ImageFeatures({t: NodeFeatures(g[t].x, {key: g[t][key] for key in spec.attrs},
                                          list(g[f'{t}_names']) if spec.names else None)
                          for t, spec in VISUAL_NODES.items()})


def backend_widths(options: GraphOptions) -> VisualWidths:
    """The widths of the visual features ``options`` make: their vision
    backend's (no weights loaded), what a model reading them is built with."""
    from ..features.backends import vision_backend
    return vision_backend(GraphBuilder(options).vision).widths


class GraphBuilder:
    """Turns a split's tweets into graphs: finds each tweet's image, extracts
    (or reads cached) frozen features of the usable ones, grounds noun phrases
    to detected objects (UMGF's rule), gathers aux words (captions, object
    tags, OCR) and calls :func:`build_graph`.

    Args:
        options (GraphOptions): extractor and aux settings.
        image_root (path, optional): folder of ``<image_id>.<ext>`` images;
            without it every tweet's image is missing.
        captions (path or Mapping[str, str], optional): BLIP-2 caption file,
            or image id -> caption.
        feature_cache (path, optional): root of the on-disk feature cache.
        labels (Sequence[str], optional): the label set giving ``word.y`` ids.
            (default: :obj:`BIO_LABELS`)
        progress (bool, optional): progress bar over image extraction.
            (default: :obj:`True`)

    Calling it returns ``(graphs, report)``; the report counts tweets without a
    usable image (and why), detected and grounded objects, and tweets with aux
    words. ``image_paths`` (one path or :obj:`None` per tweet) replaces the
    lookup under ``image_root``, for tweets whose photos lie anywhere (new
    tweets to tag).
    """

    def __init__(self, options: GraphOptions, image_root=None, captions=None, feature_cache=None,
                 labels: Sequence[str] = BIO_LABELS, progress: bool = True):
        self.options = options
        self.image_root = image_root
        self.captions = captions
        self.feature_cache = feature_cache
        self.labels = tuple(labels)
        self.progress = progress

    @property
    def vision(self):
        from ..features.vision import VisionConfig
        o = self.options
        return VisionConfig(arch=o.vision_arch, weights=o.vision_weights, scale_grid=o.scale_grid)

    @property
    def detector(self):
        from ..features.detector import DetectorConfig
        o = self.options
        return DetectorConfig(arch=o.detector_arch, weights=o.detector_weights, top_k=o.top_k,
                              conf=o.detector_conf, cascades=o.cascades, hog_people=o.hog_people)

    def widths(self) -> VisualWidths:
        """The widths of the visual features the vision backend makes (:func:`backend_widths`)."""
        return backend_widths(self.options)

    def visual_backend(self) -> str:
        """What makes the visual features, recorded on every graph as ``g.visual_backend``."""
        from ..features.backends import describe_backends, detector_backend, vision_backend
        return describe_backends(vision_backend(self.vision), detector_backend(self.detector))

    def _features(self, tweets: Sequence[Tweet], report: dict, paths: Sequence | None
                  ) -> tuple[list[ImageFeatures | None], list]:
        from ..data.paths import image_id_problem, image_path
        from ..features.extract import FeatureExtractor

        if paths is None and self.image_root is None:
            report['image_problems'] = {'no image folder given (--image-root)': len(tweets)}
            return [None] * len(tweets), [None] * len(tweets)
        unsafe: dict[int, str] = {}
        if paths is None:
            # An id that is not a plain file name (../x, /abs, NUL, overlong) is never looked up:
            # that tweet counts as having no image, and the id is reported.
            unsafe = {i: problem for i, t in enumerate(tweets) if (problem := image_id_problem(t.image_id))}
            paths = [None if i in unsafe else image_path(self.image_root, t.image_id)
                     for i, t in enumerate(tweets)]
        elif all(p is None for p in paths):  # new tweets given without photos: no extractor to load
            report['image_problems'] = {'no image given': len(tweets)}
            return [None] * len(tweets), list(paths)
        extractor = FeatureExtractor(self.vision, self.detector, cache_dir=self.feature_cache,
                                     progress=self.progress)
        looked_up = [i for i in range(len(tweets)) if i not in unsafe]
        features: list[ImageFeatures | None] = [None] * len(tweets)
        for i, f in zip(looked_up, extractor.extract([paths[i] for i in looked_up])):
            features[i] = f
        report['image_problems'] = dict(extractor.report.counts)
        report['extraction'] = extractor.report.summary()
        if unsafe:
            report['image_problems']['unsafe_image_id'] = len(unsafe)
            report['unsafe_image_ids'] = {tweets[i].image_id[:80]: problem for i, problem in unsafe.items()}
            log.warning('%d tweet(s) with an image id that is not a plain file name were given no image, '
                        'e.g. %s', len(unsafe), next(iter(unsafe.values())))
        return features, paths

    def _ocr(self, tweets: Sequence[Tweet], features: list, paths: list, report: dict) -> dict[str, str]:
        """Image id -> the words printed in its photo (RapidOCR, cached beside the features)."""
        from ..data.images import read_bytes
        from ..features.ocr import CachedTextReader, OcrConfig

        reader = CachedTextReader(OcrConfig(min_confidence=self.options.ocr_min_confidence),
                                  cache_dir=self.feature_cache)
        usable = {t.image_id: p for t, f, p in zip(tweets, features, paths) if f is not None}
        # The photos were read once for their features; one deleted since has no words.
        files = {image_id: data for image_id, p in usable.items() if (data := read_bytes(p)[0]) is not None}
        words = reader([(data, None) for data in files.values()])
        report['ocr'] = {'images': len(files), 'read': reader.read_count,
                         'with_words': sum(len(w) > 0 for w in words)}
        return {image_id: w.text for image_id, w in zip(files, words)}

    def __call__(self, tweets: Sequence[Tweet], image_paths: Sequence | None = None
                 ) -> tuple[list[HeteroData], dict]:
        from ..features.image_text import aux_words, read_captions
        from ..features.phrases import PhraseExtractor, ground

        if image_paths is not None and len(image_paths) != len(tweets):
            raise ValueError(f"'image_paths' needs one entry (a path or None) per tweet: got "
                             f'{len(image_paths)} for {len(tweets)} tweets')
        report: dict = {'tweets': len(tweets)}
        features, paths = self._features(tweets, report, image_paths)
        with_objects = [i for i, f in enumerate(features) if f is not None and len(f[schema.OBJECT])]
        grounds: list[Tensor | None] = [None] * len(tweets)
        if with_objects:
            phrases = PhraseExtractor(self.options.spacy_model).batch([tweets[i].words for i in with_objects])
            matched = 0
            for i, tweet_phrases in zip(with_objects, phrases):
                grounding = ground(tweets[i].words, tweet_phrases, features[i].names(schema.OBJECT))
                grounds[i] = grounding.edge_index
                matched += int(grounding.matched.sum())
            report['objects'] = sum(len(features[i][schema.OBJECT]) for i in with_objects)
            report['objects_grounded_to_phrases'] = matched
        captions = self.captions
        if captions is not None and not isinstance(captions, Mapping):
            captions = read_captions(captions)
        ocr = self._ocr(tweets, features, paths, report) if self.options.ocr else None
        graphs = []
        widths, backend = self.widths(), self.visual_backend()
        report['visual_backend'] = backend
        for tweet, f, edges in zip(tweets, features, grounds):
            aux = aux_words(tweet.image_id, captions=captions, ocr=ocr,
                            tags=f.names(schema.OBJECT) if f is not None else None,
                            order=self.options.aux_sources)
            graphs.append(build_graph(tweet, f, aux=aux, grounds=edges, labels=self.labels,
                                      widths=widths, visual_backend=backend))
        report['images_missing'] = sum(f is None for f in features)
        report['tweets_with_aux'] = sum(len(g.aux_words) > 0 for g in graphs)
        return graphs, report
