"""Transforms over tweet graphs (PyG :class:`BaseTransform` style).

A model declares the relations and node types it reads and the graph rules it
needs; the data pipeline applies them before batching
(:meth:`graphmner.models.base.MNERModel.graph_transform`): keep what the model
reads, apply its rules, then build the declared relations that the schema
builds on demand (:class:`BuildRelations`), so nothing graph-building is
recomputed inside a model's ``forward``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from ..features.phrases import GENERAL_WORDS
from ..features.types import VISUAL_NODES
from . import schema
from .builder import complete_bipartite, relation_edges


class KeepRelations(BaseTransform):
    r"""Keeps only the edge types a model reads and the node types it reads
    (those the relations touch, those named in ``node_types``, and always
    ``word`` and ``image``), so batches carry no unused features.

    Args:
        relations (Iterable[tuple[str, str, str]]): the edge types to keep; each
            must be one of :data:`schema.EDGE_TYPES`.
        node_types (Iterable[str], optional): node types to keep even where no
            kept relation touches them (e.g. ITA's ``aux`` words, read as text).
            (default: :obj:`()`)
    """

    def __init__(self, relations: Iterable[tuple[str, str, str]], node_types: Iterable[str] = ()):
        self.relations = tuple(tuple(r) for r in relations)
        unknown = [r for r in self.relations if r not in schema.EDGE_TYPES]
        if unknown:
            raise ValueError(f'Unknown relation(s) {unknown}; valid: {list(schema.EDGE_TYPES)}')
        node_types = tuple(node_types)
        unknown_nodes = [t for t in node_types if t not in schema.NODE_TYPES]
        if unknown_nodes:
            raise ValueError(f'Unknown node type(s) {unknown_nodes}; valid: {list(schema.NODE_TYPES)}')
        self.node_types = {schema.WORD, schema.IMAGE, *node_types}.union(
            *({src, dst} for src, _, dst in self.relations))

    def forward(self, data: HeteroData) -> HeteroData:
        for edge_type in list(data.edge_types):
            if edge_type not in self.relations:
                del data[edge_type]
        for node_type in list(data.node_types):
            if node_type not in self.node_types:
                del data[node_type]
        return data

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({[schema.edge_type_name(r) for r in self.relations]}, '
                f'node_types={sorted(self.node_types)})')


class BuildRelations(BaseTransform):
    r"""Builds the edges of every relation in ``relations`` that the schema
    builds on demand (:data:`schema.RULES`), from the graph's node counts, so
    they follow the nodes as they are now (after :class:`ImageAsObject` or
    :class:`DropImage`, say); stored relations are left as they are. Edge
    types end in schema order.

    Args:
        relations (Iterable[tuple[str, str, str]]): edge types of
            :data:`schema.EDGE_TYPES`.
    """

    def __init__(self, relations: Iterable[tuple[str, str, str]]):
        relations = tuple(tuple(r) for r in relations)
        unknown = [r for r in relations if r not in schema.EDGE_TYPES]
        if unknown:
            raise ValueError(f'Unknown relation(s) {unknown}; valid: {list(schema.EDGE_TYPES)}')
        self.relations = tuple(r for r in relations if schema.RULES[r] != 'stored')

    def forward(self, data: HeteroData) -> HeteroData:
        for edge_type in self.relations:
            data[edge_type].edge_index = relation_edges(data, edge_type)
        present = [e for e in schema.EDGE_TYPES if e in data.edge_types]
        if [e for e in data.edge_types if e in schema.EDGE_TYPES] != present:
            stores = {e: data[e].to_dict() for e in present}
            for edge_type in present:
                del data[edge_type]
            for edge_type in present:
                for key, value in stores[edge_type].items():
                    data[edge_type][key] = value
        return data

    def __repr__(self) -> str:
        return f'{type(self).__name__}({[schema.edge_type_name(r) for r in self.relations]})'


class SelectAux(BaseTransform):
    r"""Keeps the ``aux`` nodes of the image-text sources a model reads, in the
    order of ``sources`` (a tweet's words of one source keep their order), so
    that aux node ``i`` is the model's aux word ``i`` and the relations built
    on demand afterwards (:class:`BuildRelations`) connect those nodes.

    Args:
        sources (Sequence[str]): sources of :data:`schema.AUX_SOURCES`.
    """

    def __init__(self, sources: Iterable[str]):
        self.sources = tuple(sources)
        unknown = sorted(set(self.sources) - set(schema.AUX_SOURCES))
        if unknown:
            raise ValueError(f'Unknown aux source(s) {unknown}; valid: {list(schema.AUX_SOURCES)}')

    def forward(self, data: HeteroData) -> HeteroData:
        if schema.AUX not in data.node_types or 'source' not in data[schema.AUX]:
            return data
        aux = data[schema.AUX]
        source = aux.source.tolist()
        order = [i for s in self.sources for i, k in enumerate(source) if k == schema.AUX_SOURCES.index(s)]
        data.aux_words = [data.aux_words[i] for i in order]
        aux.source = aux.source[torch.tensor(order, dtype=torch.long)]
        aux.num_nodes = len(order)
        return data

    def __repr__(self) -> str:
        return f'{type(self).__name__}({list(self.sources)})'


def _replace_objects(data: HeteroData, x: Tensor, box: Tensor, cls: Tensor, score: Tensor) -> None:
    """Makes ``x`` (``[K, C]``, with their ``box``, ``cls``, ``score``) the
    graph's ``object`` nodes, each a "general" object grounded to every word;
    the relations built on demand that touch the objects follow the new nodes."""
    objects = data[schema.OBJECT]
    objects.x, objects.box, objects.cls, objects.score = x, box, cls, score
    grounds = complete_bipartite(x.shape[0], data[schema.WORD].num_nodes)
    # The stored relations (the reverse flipped, as the builder writes it); those built on
    # demand follow the new nodes.
    for edge_type, edges in ((schema.GROUNDS, grounds), (schema.REV_GROUNDS, grounds.flip(0))):
        if edge_type in data.edge_types:
            data[edge_type].edge_index = edges
    for edge_type in data.edge_types:
        if schema.OBJECT in (edge_type[0], edge_type[2]) and schema.RULES.get(edge_type) != 'stored':
            data[edge_type].edge_index = relation_edges(data, edge_type)


def _image_missing(data: HeteroData) -> bool:
    image = data[schema.IMAGE]
    return bool(image.missing.any()) if 'missing' in image else False


#: The box of a node that is the whole photo (normalised xyxy).
WHOLE_IMAGE_BOX = (0.0, 0.0, 1.0, 1.0)


class ImageAsObject(BaseTransform):
    r"""A graph whose image is usable but has no ``object`` node gets one: the
    whole image (its global feature and box ``[0, 0, 1, 1]``), a "general"
    object grounded to every word (UMGF's official code: with no detection
    the visual node is the image itself). Graphs without a usable image, or
    with objects, are returned unchanged.
    """

    def forward(self, data: HeteroData) -> HeteroData:
        objects = data[schema.OBJECT]
        if _image_missing(data) or ('x' in objects and objects.x.shape[0] > 0):
            return data
        _replace_objects(data, data[schema.IMAGE].x.view(1, -1).clone(), torch.tensor([WHOLE_IMAGE_BOX]),
                         torch.tensor([-1]), torch.ones(1))  # cls -1: no detector class
        return data


class GeneralWordObjects(BaseTransform):
    r"""UMGF's visual input as its official code builds it
    (``TransformersWsz/UMGF``, crops made by ``TransformersWsz/onestage_grounding``):
    exactly one ``object`` node per general word (:data:`GENERAL_WORDS`:
    person, miscellaneous, location, organization, in that order), each
    grounded to every word.

    The official code queries the one-stage visual grounding model of Yang et
    al. (ICCV 2019) with each general word, crops its most confident box and
    reads the crop; where grounding fails it reads the original image
    instead. No phrase-grounding model is at hand here, so a general word
    takes the graph's most confident detected object of a class it names
    (``person``: a YOLO person, or a face or body of the OpenCV cascades),
    and the whole image (feature, box ``[0, 0, 1, 1]``, ``cls`` -1, ``score``
    1) where no detected object is of such a class: always for
    *miscellaneous*, *location* and *organization*, which name no class of
    our detectors (the official fallback, where the grounding model would
    have returned some box). The other detected objects are dropped: the
    official code reads only the four crops. A crop's feature is the one
    the frozen vision backend gave the detector's crop, where the official
    code fine-tunes a ResNet-152 on its crops. ``object_names`` become
    ``'<general word>: <what it took>'``.

    A graph without a usable image is returned unchanged (no visual node, as
    for every model here; the official code read a stock photo).

    Args:
        words (Mapping[str, Sequence[str]], optional): general word -> the
            detector class names it takes, in node order.
            (default: :data:`GENERAL_WORDS`)
    """

    def __init__(self, words: Mapping[str, Sequence[str]] = GENERAL_WORDS):
        if not words:
            raise ValueError("'words' needs at least one general word")
        self.words = {word: tuple(classes) for word, classes in words.items()}

    def forward(self, data: HeteroData) -> HeteroData:
        if _image_missing(data):
            return data
        objects, image = data[schema.OBJECT], data[schema.IMAGE].x.view(-1)
        detected = list(getattr(data, 'object_names', None) or []) if 'x' in objects else []
        rows, names = [], []
        for word, classes in self.words.items():
            found = [i for i, name in enumerate(detected) if name in classes]
            best = max(found, key=lambda i: float(objects.score[i])) if found else None
            rows.append(best)
            names.append(f'{word}: {detected[best] if best is not None else "whole image"}')

        def take(key: str, fallback: Tensor) -> Tensor:  # [4, ...]: the chosen objects' rows, or the image's
            return torch.stack([objects[key][i] if i is not None else fallback for i in rows])

        _replace_objects(data, take('x', image), take('box', torch.tensor(WHOLE_IMAGE_BOX)),
                         take('cls', torch.tensor(-1)), take('score', torch.tensor(1.0)))
        data.object_names = names
        return data

    def __repr__(self) -> str:
        return f'{type(self).__name__}({list(self.words)})'


class RegionsAsObjects(BaseTransform):
    r"""UMGF's "w/o Tar." ablation (Zhang et al., AAAI 2021, § Ablation
    Study: "adopts the averagely segmented regions as nodes rather than the
    targeted regions"): the ``region`` cells of the backbone's grid (7x7 = 49
    for ResNet, UMT's regions; the paper gives no count) replace the
    ``object`` nodes, each grounded to every word (a region corresponds to no
    phrase), with ``cls`` -1, ``score`` 1 and ``object_names``
    ``'region <i>'``; the ``region`` store is then dropped (its rows are the
    objects now). A graph without a usable image has no region, hence no
    object.
    """

    def forward(self, data: HeteroData) -> HeteroData:
        regions = data[schema.REGION]
        if 'x' not in regions:
            raise ValueError("RegionsAsObjects needs the graph's 'region' nodes (keep them: "
                             'KeepRelations(..., node_types=[region]))')
        k = regions.x.shape[0]
        _replace_objects(data, regions.x, regions.box, torch.full((k, ), -1, dtype=torch.long), torch.ones(k))
        data.object_names = [f'region {i}' for i in range(k)]
        del data[schema.REGION]
        return data


class CompleteBipartite(BaseTransform):
    r"""Replaces the edges of a bipartite relation (and of its reverse, if
    given and present) by every source -> every destination of the graph.
    UMGF's ``edges='all'`` (its official code links every word with every
    object) and its "w/o targeted objects" ablation.

    Args:
        relation (tuple[str, str, str]): the edge type to fill.
        reverse (tuple[str, str, str], optional): its reverse edge type.
            (default: :obj:`None`)
    """

    def __init__(self, relation: tuple[str, str, str], reverse: tuple[str, str, str] | None = None):
        for r in (relation, reverse):
            if r is not None and r not in schema.EDGE_TYPES:
                raise ValueError(f'Unknown relation {r}; valid: {list(schema.EDGE_TYPES)}')
        self.relation, self.reverse = relation, reverse

    def forward(self, data: HeteroData) -> HeteroData:
        src, _, dst = self.relation
        edges = complete_bipartite(data[src].num_nodes or 0, data[dst].num_nodes or 0)
        data[self.relation].edge_index = edges
        if self.reverse is not None and self.reverse in data.edge_types:
            data[self.reverse].edge_index = edges.flip(0)
        return data

    def __repr__(self) -> str:
        return f'{type(self).__name__}({schema.edge_type_name(self.relation)})'


#: Node types built from an image's features; a tweet without a usable image has none.
VISUAL_NODE_TYPES = tuple(t for t, spec in VISUAL_NODES.items() if spec.rows is None)
#: Aux words read off the image itself (a caption file is keyed by image id and outlives the image).
IMAGE_AUX_SOURCES = ('tag', 'ocr')


class DropImage(BaseTransform):
    r"""Makes a tweet's image unusable with probability ``p``, exactly as
    :class:`~graphmner.graph.builder.GraphBuilder` builds a tweet whose image
    is missing: zero ``image.x`` with ``missing=True``, no region, scale or
    object node (nor their edges), no aux words read off the image (object
    tags, OCR; caption words stay, as the builder keeps them), no object
    names. For missing-image robustness curves (the issue's all / half / none
    of the images usable).

    The draw is a hash of ``seed``, the tweet's image id and words, not of a
    random stream: the same tweets lose their image in every model's
    evaluation, in any order, and a tweet dropped at ``p`` is dropped at every
    larger ``p``. Graphs already without an image are returned unchanged.

    Args:
        p (float): the probability that a tweet loses its image, in [0, 1].
        seed (int, optional): which tweets are drawn. (default: :obj:`0`)
    """

    def __init__(self, p: float, seed: int = 0):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"'p' is a probability in [0, 1], got {p}")
        self.p, self.seed = float(p), int(seed)

    def draw(self, data: HeteroData) -> float:
        """This tweet's uniform draw in [0, 1): it loses its image when the draw is below ``p`` (so
        ``p`` set to the k-th smallest draw of a test set takes the image of exactly k - 1 tweets)."""
        key = f"{self.seed}\x00{data.image_id}\x00{' '.join(data.words)}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], 'big') / 2.0 ** 64

    def drops(self, data: HeteroData) -> bool:
        """Whether this tweet loses its image."""
        return self.draw(data) < self.p

    def forward(self, data: HeteroData) -> HeteroData:
        image = data[schema.IMAGE]
        if bool(image.missing.any()) or not self.drops(data):
            return data
        image.x = torch.zeros_like(image.x)
        image.missing = torch.tensor([True])
        for node_type in VISUAL_NODE_TYPES:
            if node_type not in data.node_types:
                continue
            store = data[node_type]
            for key in list(store.keys()):  # x, box, level, cls, score: one row per node
                store[key] = store[key][:0]
        for edge_type in data.edge_types:
            if {edge_type[0], edge_type[2]} & set(VISUAL_NODE_TYPES):
                data[edge_type].edge_index = torch.zeros(2, 0, dtype=torch.long)
        if schema.AUX in data.node_types and 'source' in data[schema.AUX]:
            self._drop_image_words(data)
        for node_type in VISUAL_NODE_TYPES:
            if VISUAL_NODES[node_type].names:
                data[f'{node_type}_names'] = []
        return data

    @staticmethod
    def _drop_image_words(data: HeteroData) -> None:
        aux = data[schema.AUX]
        image_sources = torch.tensor([schema.AUX_SOURCES.index(s) for s in IMAGE_AUX_SOURCES])
        keep = ~torch.isin(aux.source, image_sources)  # [A]
        kept = int(keep.sum())
        data.aux_words = [word for word, k in zip(data.aux_words, keep.tolist()) if k]
        aux.source = aux.source[keep]
        aux.num_nodes = kept
        for edge_type in data.edge_types:
            if schema.AUX in (edge_type[0], edge_type[2]) and schema.RULES.get(edge_type) != 'stored':
                data[edge_type].edge_index = relation_edges(data, edge_type)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(p={self.p}, seed={self.seed})'
