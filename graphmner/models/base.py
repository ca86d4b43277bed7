"""The one contract every graphmner model honours (after flair's ``Model``).

A model reads a PyG :class:`~torch_geometric.data.Batch` of tweet graphs and
returns CRF emissions over the tweets' words (:meth:`MNERModel.forward`); it
declares the node and edge types it reads (:attr:`~MNERModel.node_types`,
:attr:`~MNERModel.relations`) and the graph rules it needs
(:meth:`~MNERModel.graph_transforms`), which the data pipeline applies. On
top of that every model gets, from this class:

- :meth:`loss` for training: the weighted CRF NLL plus the method's weighted
  :meth:`auxiliary_losses`, every part in the log;
- :meth:`decode` (BIO labels per tweet, and with ``marginals=True`` each
  decoded tag's posterior) and :meth:`evaluate` (span scores), which never
  compute a loss, in any of the model's :attr:`views`;
- :meth:`save` / :func:`load` that record the class by its registry name, its
  config and its labels, so a checkpoint rebuilds itself.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, HeteroData
from torch_geometric.transforms import BaseTransform, Compose
from torch_geometric.utils import to_dense_batch

from ..data.labels import BIO_LABELS
from ..features.types import VisualWidths
from ..graph import schema
from ..graph.data_config import DataConfig
from ..graph.options import GraphOptions
from ..graph.transforms import BuildRelations, KeepRelations, SelectAux
from ..io import CheckpointError, atomic_save, load_checkpoint
from ..metrics import span_scores
from ..nn.crf import CRF
from ..nn.encoder import TextEncoder
from ..nn.standardize import FeatureStandardizer
from ..nn.subword import CONTINUATION, SubwordNodes, first_pieces
from ..nn.tagging import TagScheme
from ..version import __version__
from .evidence import Evidence

EdgeType = tuple[str, str, str]


def image_missing(data: Batch | HeteroData, reader: str = 'The model') -> Tensor:
    """``[B]`` bool (``[1]`` for one graph): the tweet has no usable image.

    Raises:
        ValueError: the graphs have no ``image.missing`` (every graph
            :func:`~graphmner.graph.build_graph` makes has it).
    """
    image = data[schema.IMAGE]
    if 'missing' not in image:
        raise ValueError(f"{reader} reads 'image.missing' (which tweets have no usable image); the graphs "
                         'have none: build them with graphmner.graph.build_graph')
    return image.missing.view(-1).bool()


@contextmanager
def _one_thread() -> Iterator[None]:
    """The forward-backward recursion is ~2T small ops on [B, C, C] tensors: with
    several intra-op threads each op pays a thread wake-up that dwarfs its work
    (measured on 2 busy cores, B=32, T=40, C=9: 266 ms with 2 threads, 15 ms with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)

#: Bumped whenever a checkpoint's layout changes; :func:`graphmner.models.load`
#: refuses other formats with a message instead of failing half-way.
CHECKPOINT_FORMAT = 3
#: Checkpoint formats :func:`read_checkpoint` reads: this one, and format 2 (its data config an untyped dict).
READABLE_FORMATS = (2, CHECKPOINT_FORMAT)


@dataclass
class MNEROutput:
    """What :meth:`MNERModel.forward` returns (after transformers'
    ``TokenClassifierOutput``, without the loss: :meth:`MNERModel.loss`
    computes it)."""

    emissions: Tensor                 # [B, T, C] CRF emission scores over words
    mask: Tensor                      # [B, T] bool prefix mask of real words
    extras: dict[str, Tensor] = field(default_factory=dict)  # what auxiliary_losses reads
    counts: dict[str, int] = field(default_factory=dict)     # events for the log, summed per epoch


#: Values of ``EncoderConfig.tagging_unit``.
TAGGING_UNITS = ('word', 'subword')


@dataclass
class EncoderConfig:
    """Fields every model config starts with."""

    encoder: str = 'bert-base-uncased'  # hub name or local folder of the text encoder
    max_length: int = 128               # subword budget of the encoder (per window)
    # Subwords consecutive windows of a tweet over max_length share (None: a quarter of a window).
    window_overlap: int | None = None
    dropout: float = 0.1                # on the word states before the emission layer
    # Forbid transitions the tag scheme rules out, in training and decoding alike. The official
    # codes of UMGF, MAF, HVPNeT (GMF) and ITA constrain nothing (False, with repair_targets False
    # for BIO); the configs keep True: on bert-crf (Twitter-2017, seeds 1-3) that form loses 1.09 F1.
    constrained_decoding: bool = True
    # Train on IOB2-repaired labels (word.y: a chunk-starting I-X as B-X); False: on the file's
    # labels as written, as the BIO official codes do (only Twitter-2015 has such labels). False
    # needs an unconstrained 'bio' CRF; BIOES (flair, ITA's code) always repairs.
    repair_targets: bool = True
    tag_scheme: str = 'bio'             # the CRF's tags: 'bio', or 'bioes' (E- ends, S- single)
    # What is fused and tagged: 'word' (first-subword states; ITA's official code), or 'subword'
    # (every piece a node and a CRF position, X on continuation pieces: the official codes of UMT,
    # MAF, UMGF and HVPNeT; graphmner.nn.subword). Scores are word-level either way.
    tagging_unit: str = 'word'

    def __post_init__(self):
        if self.tagging_unit not in TAGGING_UNITS:
            raise ValueError(f'tagging_unit must be one of {TAGGING_UNITS}, got {self.tagging_unit!r}')
        if self.tagging_unit == 'subword' and (self.constrained_decoding or self.tag_scheme != 'bio'):
            raise ValueError(f"tagging_unit 'subword' tags continuation pieces X, as the official codes do, "
                             f'with an unconstrained BIO CRF: it needs constrained_decoding=False and '
                             f"tag_scheme 'bio' (got {self.constrained_decoding} and {self.tag_scheme!r})")
        if not self.repair_targets and (self.constrained_decoding or self.tag_scheme != 'bio'):
            raise ValueError(f"repair_targets=False trains on the file's stray I- labels, which need "
                             f"constrained_decoding=False and tag_scheme 'bio' (got "
                             f'{self.constrained_decoding} and {self.tag_scheme!r}): a constrained '
                             'CRF cannot score them and BIOES cannot write them')

    def check_graph_options(self, options: GraphOptions) -> None:
        """Raises :class:`ValueError` (one line naming both settings) when the
        graphs ``options`` build cannot be read with this config; checked
        before any graph is built."""

    def fit_visual_widths(self, widths: VisualWidths) -> EncoderConfig:
        """This config with its visual input widths set to the vision
        backend's ``widths``: what a model is built with. A model that reads
        no visual feature keeps its config."""
        return self

    def check_visual_widths(self, widths: VisualWidths, source: str = 'the data') -> None:
        """Raises :class:`ValueError` (one line naming both) when this config
        was built for visual widths other than ``widths``, e.g. a checkpoint
        read with features of another backend."""
        fitted = self.fit_visual_widths(widths)
        wrong = [f.name for f in dataclasses.fields(self) if getattr(fitted, f.name) != getattr(self, f.name)]
        if wrong:
            built = ', '.join(f'{name}={getattr(self, name)}' for name in wrong)
            given = ', '.join(f'{name}={getattr(fitted, name)}' for name in wrong)
            raise ValueError(f'{type(self).__name__} was built for visual widths {built}; {source} has '
                             f'{given}')


def shared_width(widths: VisualWidths, node_types: Sequence[str], owner: str) -> int:
    """The one ``x`` width of ``node_types`` (read by ``owner`` through one
    ``visual_dim``); a backend giving them different widths is a :class:`ValueError`."""
    found = {t: widths.x[t] for t in node_types}
    if len(set(found.values())) != 1:
        raise ValueError(f'{owner} reads {", ".join(node_types)} through one visual_dim, but the vision '
                         f'backend gives them the widths {found}')
    return found[node_types[0]]


class MNERModel(nn.Module):
    """Base class: subclasses set ``name``, ``config_class``, ``relations``,
    ``node_types``, ``visual_node_types`` (and ``views`` and ``text_view`` if
    they have several) and implement :meth:`forward`, which starts with the
    shared checks (:meth:`check_batch`, :meth:`check_words`) and reads image
    presence through :meth:`image_mask`; methods with extra objectives add
    :meth:`auxiliary_losses` (a function of the batch and the output, which it
    leaves as they are) and :meth:`loss_weights`.

    The data and every output speak IOB2 (``labels``); the CRF runs on the
    tags of :attr:`tagging` (the labels, or their BIOES expansion).

    Args:
        config: the model's config dataclass (a subclass of :class:`EncoderConfig`).
        labels (Sequence[str], optional): the BIO label set, in id order.
            (default: :obj:`BIO_LABELS`)
        pooler (bool, optional): give the encoder a ``tanh(W [CLS])`` pooler
            (the checkpoint's where it has one) for methods that read a
            sentence vector. (default: :obj:`False`)
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    #: The edge types the model reads (their edges, in ``forward``); the data
    #: pipeline drops the others and builds these where the schema builds them
    #: on demand. A relation the method realises without edges (the CRF's word
    #: order, an encoder's attention) is not declared: it is display-only.
    relations: ClassVar[tuple[EdgeType, ...]] = ()
    #: The relations read besides :attr:`relations` when the config's
    #: ``aux_sources`` names any (the image-text words as nodes); an instance
    #: with aux sources has them in its ``relations``.
    aux_relations: ClassVar[tuple[EdgeType, ...]] = ()
    #: The node types the model reads besides those the relations touch
    #: (``word`` and ``image`` always stay).
    node_types: ClassVar[tuple[str, ...]] = ()
    #: The inference views; ``run.py`` scores each one when there are several.
    views: ClassVar[tuple[str, ...]] = ('default', )
    #: The views whose mean dev F1 selects the best checkpoint; empty: the view in force.
    selection_views: ClassVar[tuple[str, ...]] = ()
    #: The view that tags a tweet without image text (aux words) where the model
    #: reads them, said in predictions; :obj:`None`: the model has no such fallback.
    text_view: ClassVar[str | None] = None
    #: The node types whose ``x`` the model reads, each ``config.visual_dim`` wide
    #: (checked by :meth:`check_batch`); a model with any also reads ``image.missing``.
    visual_node_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: EncoderConfig, labels: Sequence[str] = BIO_LABELS, *, pooler: bool = False):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f'{type(self).__name__} needs a {self.config_class.__name__}, '
                            f'got {type(config).__name__}')
        self.config = config
        unknown = sorted(set(self.aux_sources(config)) - set(schema.AUX_SOURCES))
        if unknown:
            raise ValueError(f'Unknown aux_sources {unknown}; expected {schema.AUX_SOURCES}')
        if self.aux_sources(config):
            self.relations = (*type(self).relations, *type(self).aux_relations)
        self.labels = tuple(labels)
        self._label_id = {label: i for i, label in enumerate(self.labels)}
        self.subword_unit = config.tagging_unit == 'subword'
        # the subword unit's CRF also tags X (continuation pieces), after the labels
        self.tagging = TagScheme((*self.labels, CONTINUATION) if self.subword_unit else self.labels,
                                 config.tag_scheme)
        self.encoder = TextEncoder(config.encoder, max_length=config.max_length, pooler=pooler,
                                   window_overlap=config.window_overlap, subword_states=self.subword_unit)
        self.crf = CRF(self.tagging.num_tags,
                       constraints=self.tagging.constraints() if config.constrained_decoding else None)
        self._view: str | None = None
        #: The process group whose ranks each hold a share of every training
        #: batch (the trainer sets it under torchrun); batch-level objectives
        #: gather over it in training mode. None: this process holds the batch.
        self.batch_group: Any = None
        #: How the training graphs were built (graph options, captions, tokenizer
        #: style, versions): saved in the checkpoint, so that a new tweet gets the
        #: same graph (see :class:`graphmner.predict.Tagger`).
        self.data_config: DataConfig | None = None

    @property
    def tags(self) -> tuple[str, ...]:
        """The CRF's tag set (the labels, or their BIOES expansion)."""
        return self.tagging.tags

    # -- the parts each method writes ---------------------------------------------
    def forward(self, batch: Batch) -> MNEROutput:
        raise NotImplementedError

    def auxiliary_losses(self, batch: Batch, output: MNEROutput) -> dict[str, Tensor]:
        """The method's objectives besides the CRF NLL, by name (none here)."""
        return {}

    def loss_weights(self) -> dict[str, float]:
        """Weight of ``'nll'`` and of each auxiliary loss in :meth:`loss`."""
        return {'nll': 1.0}

    def epoch_warnings(self, totals: dict[str, float]) -> list[str]:
        """What an epoch's log shows to have gone wrong, one line each, for the
        trainer to warn about; ``totals`` holds :meth:`loss`'s parts averaged
        and its counts summed over the epoch's batches and ranks (none here)."""
        return []

    def graph_transforms(self) -> list[BaseTransform]:
        """Graph rules the method needs, applied by the data pipeline after
        :class:`KeepRelations` (none here)."""
        return []

    @classmethod
    def needs_image_features(cls, config: EncoderConfig) -> bool:
        """Whether the model reads any node built from image features (regions,
        pyramid cells, objects); a model that does not needs no extractor."""
        kept = {*cls.node_types, *(t for src, _, dst in cls.relations for t in (src, dst))}
        return bool(kept & {schema.REGION, schema.SCALE, schema.OBJECT})

    @classmethod
    def aux_sources(cls, config: EncoderConfig) -> tuple[str, ...]:
        """The image-text sources (``caption``, ``ocr``, ``tag``) whose aux words
        the model reads, in its order: the config's ``aux_sources``, none for
        a config without the field."""
        return tuple(getattr(config, 'aux_sources', ()))

    # -- shared plumbing ------------------------------------------------------------
    def graph_transform(self) -> Compose:
        """What the data pipeline applies to every graph before batching: keep
        what the model reads, apply its graph rules, then build its relations
        that the schema builds on demand (from the nodes as the rules left them)."""
        sources = self.aux_sources(self.config)
        node_types = (*self.node_types, schema.AUX) if sources else self.node_types
        select = [SelectAux(sources)] if sources else []
        pieces = [SubwordNodes(self.encoder.pieces_per_word, len(self.labels))] if self.subword_unit else []
        return Compose([KeepRelations(self.relations, node_types), *select, *self.graph_transforms(),
                        *pieces, BuildRelations(self.relations)])

    @staticmethod
    def words_of(batch: Batch) -> list[list[str]]:
        """The tweets' words (a :class:`Batch` collates them into one list per graph)."""
        if not isinstance(batch, Batch):
            raise TypeError(f'Models read a torch_geometric Batch of tweet graphs, got '
                            f'{type(batch).__name__} (use Batch.from_data_list([...]))')
        return batch.words

    def aux_words_of(self, batch: Batch) -> list[list[str]]:
        """Aux words per tweet, restricted to and ordered by :meth:`aux_sources`
        (already so where the batch went through :meth:`graph_transform`); no
        word for a model that reads none."""
        order = [schema.AUX_SOURCES.index(s) for s in self.aux_sources(self.config)]
        if not order or schema.AUX not in batch.node_types:
            return [[] for _ in range(batch.num_graphs)]
        sources: list[list[int]] = [[] for _ in range(batch.num_graphs)]
        for source, graph in zip(batch[schema.AUX].source.tolist(), batch[schema.AUX].batch.tolist()):
            sources[graph].append(source)
        return [[word for o in order for word, s in zip(words, graph_sources) if s == o]
                for words, graph_sources in zip(batch.aux_words, sources)]

    def aux_states(self, batch: Batch) -> Tensor:
        """``[N_a, d]``: the states of the batch's aux nodes, in node order, from
        the model's ``aux_reader`` (an :class:`~graphmner.nn.aux_reader.AuxReader`
        that a model reading aux nodes has)."""
        states, mask = self.aux_reader(self.encoder, self.aux_words_of(batch))  # [B, A, d]
        nodes = batch[schema.AUX].num_nodes if schema.AUX in batch.node_types else 0
        if int(mask.sum()) != (nodes or 0):
            raise ValueError(f'The batch has {nodes} aux nodes but its aux_words list {int(mask.sum())} '
                             f"words of {list(self.aux_sources(self.config))}: batch the graphs after the "
                             "model's graph_transform()")
        return states[mask]

    def image_mask(self, batch: Batch) -> Tensor:
        """``[B]`` bool: the tweet has a usable image (``image.missing`` False).
        The one missing-image policy of every model: a graph without
        ``image.missing`` is refused, never guessed to have an image."""
        return ~image_missing(batch, type(self).__name__)

    def check_batch(self, batch: Batch) -> None:
        """Refuses a batch the model cannot read: visual features of another
        width than ``config.visual_dim`` (:attr:`visual_node_types`), or, for a
        model that reads any, no ``image.missing``."""
        if not self.visual_node_types:
            return
        image_missing(batch, type(self).__name__)
        dim = self.config.visual_dim
        for node_type in self.visual_node_types:
            store = batch[node_type] if node_type in batch.node_types else {}
            if 'x' in store and store.x.shape[-1] != dim:
                raise ValueError(f'{type(self).__name__} was built for visual_dim={dim}, got {node_type} '
                                 f'features of width {store.x.shape[-1]}')

    @staticmethod
    def check_words(batch: Batch, word_mask: Tensor) -> None:
        """Refuses a batch whose word nodes are not the words the encoder read
        (``word_mask`` ``[B, T]``): node states would land on the wrong words."""
        nodes, read = batch[schema.WORD].num_nodes, int(word_mask.sum())
        if read != nodes:
            raise ValueError(f"The batch has {nodes} word nodes but its 'words' lists {read} words")

    def target_tags(self, batch: Batch) -> Tensor | None:
        """The gold CRF tags ``[B, T]`` (0 at padding) from the BIO ids in
        ``batch['word'].y`` (IOB2-repaired), or from the file's labels
        (``batch.labels``) when ``config.repair_targets`` is off; None without
        labels."""
        store = batch[schema.WORD]
        y = getattr(store, 'y', None)
        if y is None:
            return None
        if not self.config.repair_targets:
            file_labels = torch.tensor([self._label_id[label] for labels in batch.labels for label in labels],
                                       dtype=torch.long, device=y.device)
            if self.subword_unit:  # a first piece takes its word's label, the others stay X
                first = store.first
                y = torch.where(first, file_labels[(torch.cumsum(first.long(), 0) - 1).clamp(min=0)], y)
            else:
                y = file_labels
        bio, mask = to_dense_batch(y, store.batch, fill_value=0, batch_size=batch.num_graphs)  # [B, T]
        return self.tagging.to_tags(bio, mask)

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """The training objective: ``w_nll * NLL + sum_k w_k * aux_k`` over the
        weights of :meth:`loss_weights`, and its parts for the log (each
        unweighted, the total as ``'loss'``, and the output's ``counts``)."""
        tags = self.target_tags(batch)
        if tags is None:
            raise ValueError("The batch has no word labels ('word.y'); cannot compute a loss")
        out = self(batch)
        tags = tags[:, :out.emissions.shape[1]].to(out.emissions.device)
        parts = {'nll': self.crf.nll(out.emissions, tags, out.mask), **self.auxiliary_losses(batch, out)}
        weights = self.loss_weights()
        unweighted = sorted(set(parts) - set(weights))
        if unweighted:
            raise KeyError(f'{type(self).__name__}.loss_weights() has no weight for {unweighted}')
        total = sum(weights[key] * value for key, value in parts.items())
        logs = {key: float(value.detach()) for key, value in parts.items()}
        return total, {'loss': float(total.detach()), **logs, **out.counts}

    # -- views ------------------------------------------------------------------------
    @property
    def view(self) -> str:
        """The inference view in force (see :meth:`inference_view`)."""
        return self._view if self._view is not None else self.views[0]

    @contextmanager
    def inference_view(self, view: str) -> Iterator[None]:
        """Forward, decode and evaluate with ``view`` inside the block."""
        if view not in self.views:
            raise ValueError(f'{type(self).__name__} has the views {self.views}, got {view!r}')
        kept = self._view
        self._view = view
        try:
            yield
        finally:
            self._view = kept

    @torch.no_grad()
    def decode(self, batch: Batch, marginals: bool = False
               ) -> list[list[str]] | tuple[list[list[str]], list[list[float]]]:
        """Viterbi labels per tweet (one BIO label per word); with
        ``marginals=True`` also, per tweet, the posterior marginal (CRF
        forward-backward) of each word's decoded tag."""
        out = self(batch)
        paths = self.crf.decode(out.emissions, out.mask)  # [B, T], -1 at padding
        lengths = out.mask.sum(1).tolist()
        labels = self.tagging.to_labels(paths, lengths)
        if self.subword_unit:  # scores are word-level: each word's first piece, an X there read as O
            store = batch[schema.WORD]
            labels = [['O' if label == CONTINUATION else label for label in tweet]
                      for tweet in first_pieces(labels, store.first, store.batch)]
        if not marginals:
            return labels
        with _one_thread():
            posterior = self.crf.marginals(out.emissions, out.mask)  # [B, T, C]
        chosen = posterior.gather(-1, paths.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # [B, T]
        chosen = [chosen[b, :n].double().tolist() for b, n in enumerate(lengths)]
        if self.subword_unit:
            chosen = first_pieces(chosen, batch[schema.WORD].first, batch[schema.WORD].batch)
        return labels, chosen

    @torch.no_grad()
    def explain(self, batch: Batch) -> list[Evidence]:
        """What the model read to tag each tweet of ``batch``, from its own
        forward pass (in evaluation mode, as :meth:`decode` tags): one
        :class:`~graphmner.models.evidence.Evidence` per tweet. Models that read
        the image override it; here, a model that reads none says so."""
        self.check_explainable()
        reads = self.needs_image_features(self.config) or bool(self.aux_sources(self.config))
        note = (f"'{self.name}' reads no image: its tags come from the text alone" if not reads else
                f"'{self.name}' reads the image but has no explain method to say what it read")
        return [Evidence(self.name, list(words), reads_image=reads, image_used=False, notes=[note])
                for words in self.words_of(batch)]

    def check_explainable(self) -> None:
        """Refuses to explain in training mode: dropout would change what the model reads."""
        if self.training:
            raise ValueError(f'{type(self).__name__}.explain reads the evaluation forward: call model.eval() '
                             'first')
        if self.subword_unit:
            raise ValueError(f'{type(self).__name__}.explain says what each word read; this model fuses '
                             "subword pieces (tagging_unit 'subword'): explain a model with tagging_unit "
                             "'word'")

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch], scheme: str = 'conlleval') -> dict[str, Any]:
        """Span scores of :meth:`decode` against the batches' gold labels."""
        was_training = self.training
        self.eval()
        gold, pred = [], []
        device = next(self.parameters()).device
        try:
            for batch in batches:
                batch = batch.to(device)
                pred.extend(self.decode(batch))
                gold.extend(batch.labels)
        finally:
            self.train(was_training)
        return span_scores(gold, pred, scheme=scheme)

    def selection_score(self, batches: Sequence[Batch], scheme: str = 'conlleval'
                        ) -> tuple[float, dict[str, Any]]:
        """The dev score that selects the best checkpoint (the mean F1 of
        :attr:`selection_views`, or the F1 of the view in force) and the span
        scores of the view in force."""
        scores = self.evaluate(batches, scheme)
        if not self.selection_views:
            return scores['f1'], scores
        f1 = []
        for view in self.selection_views:
            with self.inference_view(view):
                f1.append(self.evaluate(batches, scheme)['f1'])
        return sum(f1) / len(f1), scores

    # -- training set-up ----------------------------------------------------------------
    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(encoder parameters, everything else): they get separate learning rates."""
        encoder = list(self.encoder.parameters())
        ids = {id(p) for p in encoder}
        return encoder, [p for p in self.parameters() if id(p) not in ids]

    @torch.no_grad()
    def fit_feature_statistics(self, graphs: Iterable[HeteroData]) -> None:
        """Fits every :class:`FeatureStandardizer` of the model on the visual
        nodes of ``graphs`` (the training split) whose image is usable (the
        policy of :meth:`image_mask`), each on its node types' rows (of its
        pyramid level, where it has one). A standardizer that sees no node
        stays the identity."""
        standardizers = [m for m in self.modules() if isinstance(m, FeatureStandardizer)]
        if not standardizers:
            return
        rows: list[list[Tensor]] = [[] for _ in standardizers]
        for g in graphs:
            if bool(image_missing(g, type(self).__name__).any()):
                continue
            for m, chunks in zip(standardizers, rows):
                chunks += [m.rows_of(g[t]) for t in m.node_types if t in g.node_types and 'x' in g[t]]
        for m, chunks in zip(standardizers, rows):
            m.fit(chunks)

    # -- persistence -----------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {'format': CHECKPOINT_FORMAT, 'graphmner_version': __version__, 'model': self.name,
                'config': dataclasses.asdict(self.config), 'labels': list(self.labels),
                'data': None if self.data_config is None else self.data_config.to_dict(),
                'state_dict': self.state_dict()}

    def save(self, path: str | os.PathLike) -> None:
        """Writes the checkpoint atomically (temporary file, then rename)."""
        atomic_save(self.checkpoint(), path)

    @classmethod
    def upgrade_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Config values as an older graphmner wrote them (a checkpoint's, a
        model folder's) in this one's keys; :meth:`from_config` reads them
        through it (nothing to change here)."""
        return config

    @classmethod
    def from_config(cls, labels: Sequence[str] | None = None, **config: Any) -> MNERModel:
        """The model built from keyword config values (through
        :meth:`upgrade_config`; unknown keys are an error); ``labels`` default
        to :data:`BIO_LABELS`."""
        config = cls.upgrade_config(config)
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"Unknown config key(s) for '{cls.name}': {', '.join(unknown)}; "
                             f"valid: {', '.join(sorted(known))}")
        return cls(cls.config_class(**config), BIO_LABELS if labels is None else labels)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> MNERModel:
        """The model a checkpoint read by :func:`read_checkpoint` holds."""
        model = cls.from_config(checkpoint['labels'], **checkpoint['config'])
        model.load_state_dict(checkpoint['state_dict'])
        model.data_config = checkpoint.get('data')
        return model

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = 'cpu') -> MNERModel:
        """The model saved at ``path``, which must be one of this class (any
        registered model: :func:`graphmner.models.load`)."""
        checkpoint = read_checkpoint(path, map_location)
        if checkpoint['model'] != getattr(cls, 'name', None):
            raise TypeError(f"'{path}' holds a '{checkpoint['model']}' model, not {cls.__name__}")
        return cls.from_checkpoint(checkpoint)

    def extra_repr(self) -> str:
        return f"labels={len(self.labels)}, tags={len(self.tags)} ({self.config.tag_scheme})"


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    """A model checkpoint's contents, checked to be one (name, config, labels,
    state) of a format in :data:`READABLE_FORMATS`, its data record a
    :class:`~graphmner.graph.data_config.DataConfig`.

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
    data = checkpoint.get('data')
    try:  # format 2 stored an untyped dict of the same record, without the visual widths
        checkpoint['data'] = None if data is None else DataConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"'{path}' holds a data config this graphmner cannot read ({error})") from None
    return checkpoint
