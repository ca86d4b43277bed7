r"""Schema v1 of the tweet graph: node types, edge types and what each stores.

Every (tweet, image) pair becomes one :class:`torch_geometric.data.HeteroData`.
Messages flow ``source -> destination``; no type name contains ``__`` (PyG uses
it as a separator).

Node types:

=========  ===========================================  ==========================  ====================================
type       one node per                                 ``x``                       other attributes
=========  ===========================================  ==========================  ====================================
``word``   tweet word (CoNLL token), reading order      none (encoder fills it)     ``y`` label id, ``position``
``image``  graph (always exactly one)                   global photo feature        ``missing`` (bool)
``region`` cell of a 7x7 grid (ResNet: last stage)      cell feature                ``box`` (normalised xyxy)
``scale``  cell of each of 4 pyramid levels             level feature               ``level``, ``box``
``object`` detected object (at most k, or none)         pooled crop feature         ``box``, ``cls``, ``score``
``aux``    word of caption / OCR / object-tag text      none (encoder reads it)     ``source`` (see :data:`AUX_SOURCES`)
=========  ===========================================  ==========================  ====================================

Graph-level attributes: ``words``, ``aux_words`` (lists of str), ``object_names``
(list of str), ``image_id`` (str), ``labels`` (list of str) and ``visual_backend``
(str, what made the visual features).

Every visual ``x`` has the width of the vision backend (its ``widths``, :func:`~graphmner.graph.backend_widths`):
2048 for ResNet-50/152 (a ``scale`` row zero-padded from its stage's 256 / 512 / 1024
channels), 42 for the weight-free ``'descriptors'`` (every level the same width).

Edge types (see :data:`EDGE_TYPES`). A graph stores only the relations whose
edges carry information of their own (:data:`STORED`: UMGF's noun-phrase
grounding); every other relation follows from the node counts by its rule
(:data:`RULES`) and is built on demand (:class:`~graphmner.graph.transforms.BuildRelations`):
for a model, the relations it declares (``MNERModel.relations``), after its
other graph rules; for pictures and exports, all of them
(:func:`~graphmner.graph.inspect.display_graph`). "read by" names the models
that declare a relation (:data:`READ_BY`); a relation no model reads is
display-only (:data:`DISPLAY_ONLY`): the method realises it without edges, as
said in brackets. The ``aux`` relations are read by UMGF and MAF only with
their ``aux_sources`` set (``MNERModel.aux_relations``; ITA and GMF read the
aux words through the encoder, without edges).

=====================================  ===================================================  =========  ==========
relation                               rule                                                 stored     read by
=====================================  ===================================================  =========  ==========
``('word', 'next', 'word')``           i -> i+1                                             on demand  display (the CRF's chain)
``('word', 'intra', 'word')``          every ordered pair i != j                            on demand  umgf
``('object', 'intra', 'object')``      every ordered pair i != j                            on demand  umgf
``('object', 'grounds', 'word')``      object matched to a noun phrase -> that phrase's     stored     umgf
                                       words; unmatched ("general") object -> every word
``('word', 'rev_grounds', 'object')``  reverse of ``grounds``                               stored     umgf
``('region', 'informs', 'word')``      every region -> every word                           on demand  maf
``('scale', 'guides', 'word')``        every scale cell -> every word                       on demand  display (GMF's prefix attention)
``('aux', 'next', 'aux')``             i -> i+1                                             on demand  display (ITA's encoder reads the aux words in order)
``('aux', 'intra', 'aux')``            every ordered pair i != j                            on demand  umgf
``('aux', 'describes', 'word')``       every aux word -> every word                         on demand  maf, umgf
``('word', 'rev_describes', 'aux')``   reverse of ``describes``                             on demand  umgf
``('image', 'contains', 'region')``    every region of the image                            on demand  display (MAF, GMF read the image per graph)
``('image', 'contains', 'object')``    every object of the image                            on demand  display (UMGF, GMF read the image per graph)
=====================================  ===================================================  =========  ==========

``word.y`` holds IOB2-repaired label ids (a chunk-starting ``I-X`` becomes
``B-X``, as conlleval reads it) so that a constrained CRF can train on
Twitter-2015's stray ``I-`` labels; ``labels`` keeps the file's labels, which
are what runs are scored on.

Positional word attributes are called ``position``, not ``pos``: PyG reserves
``pos`` for coordinates, and any attribute whose name contains ``index`` would be
shifted by :class:`~torch_geometric.data.Batch`.
"""
from __future__ import annotations

from typing import Final

from ..features.types import AUX_SOURCES as _AUX_SOURCES

SCHEMA_VERSION: Final = 1

WORD: Final = 'word'
IMAGE: Final = 'image'
REGION: Final = 'region'
SCALE: Final = 'scale'
OBJECT: Final = 'object'
AUX: Final = 'aux'

NODE_TYPES: Final[tuple[str, ...]] = (WORD, IMAGE, REGION, SCALE, OBJECT, AUX)

WORD_NEXT: Final = (WORD, 'next', WORD)
WORD_INTRA: Final = (WORD, 'intra', WORD)
OBJECT_INTRA: Final = (OBJECT, 'intra', OBJECT)
GROUNDS: Final = (OBJECT, 'grounds', WORD)
REV_GROUNDS: Final = (WORD, 'rev_grounds', OBJECT)
INFORMS: Final = (REGION, 'informs', WORD)
GUIDES: Final = (SCALE, 'guides', WORD)
AUX_NEXT: Final = (AUX, 'next', AUX)
AUX_INTRA: Final = (AUX, 'intra', AUX)
DESCRIBES: Final = (AUX, 'describes', WORD)
REV_DESCRIBES: Final = (WORD, 'rev_describes', AUX)
CONTAINS_REGION: Final = (IMAGE, 'contains', REGION)
CONTAINS_OBJECT: Final = (IMAGE, 'contains', OBJECT)

EDGE_TYPES: Final[tuple[tuple[str, str, str], ...]] = (
    WORD_NEXT, WORD_INTRA, OBJECT_INTRA, GROUNDS, REV_GROUNDS, INFORMS,
    GUIDES, AUX_NEXT, AUX_INTRA, DESCRIBES, REV_DESCRIBES, CONTAINS_REGION, CONTAINS_OBJECT)

#: How each relation's edges follow from the graph: ``'chain'`` (i -> i+1),
#: ``'all_pairs'`` (every ordered pair i != j), ``'complete'`` (every source ->
#: every destination) or ``'stored'`` (kept in the graph as built).
RULES: Final[dict[tuple[str, str, str], str]] = {
    WORD_NEXT: 'chain', WORD_INTRA: 'all_pairs', OBJECT_INTRA: 'all_pairs', GROUNDS: 'stored',
    REV_GROUNDS: 'stored', INFORMS: 'complete', GUIDES: 'complete', AUX_NEXT: 'chain',
    AUX_INTRA: 'all_pairs', DESCRIBES: 'complete', REV_DESCRIBES: 'complete', CONTAINS_REGION: 'complete', CONTAINS_OBJECT: 'complete'}

#: The relations a built graph stores; the others are built on demand from :data:`RULES`.
STORED: Final[tuple[tuple[str, str, str], ...]] = tuple(r for r in EDGE_TYPES if RULES[r] == 'stored')

#: The models (registry names) whose declared ``relations`` read each relation;
#: a test holds it to the models' declarations.
READ_BY: Final[dict[tuple[str, str, str], tuple[str, ...]]] = {
    WORD_INTRA: ('umgf', ), OBJECT_INTRA: ('umgf', ), GROUNDS: ('umgf', ), REV_GROUNDS: ('umgf', ),
    INFORMS: ('maf', ), AUX_INTRA: ('umgf', ), DESCRIBES: ('maf', 'umgf'), REV_DESCRIBES: ('umgf', )}

#: The relations no model reads: built for pictures and exports only.
DISPLAY_ONLY: Final[tuple[tuple[str, str, str], ...]] = tuple(r for r in EDGE_TYPES if r not in READ_BY)

#: Where an ``aux`` word came from (``aux.source`` stores the index); defined by
#: the image-to-text extractors that produce them.
AUX_SOURCES: Final = _AUX_SOURCES


def edge_type_name(edge_type: tuple[str, str, str]) -> str:
    """``('object', 'grounds', 'word')`` -> ``'object__grounds__word'``: the
    string form PyG uses for module keys and we use in exports."""
    return '__'.join(edge_type)
