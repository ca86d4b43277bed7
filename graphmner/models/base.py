"""The one contract every graphmner model honours (after flair's ``Model``).

A model reads a PyG :class:`~torch_geometric.data.Batch` of tweet graphs and
returns CRF emissions over the tweets' words (:meth:`MNERModel.forward`); it
declares the node and edge types it reads (:attr:`~MNERModel.node_types`,
:attr:`~MNERModel.relations`) and the graph rules it needs
(:meth:`~MNERModel.graph_transforms`), which the data pipeline applies. On
top of that every model gets, from this class:

- :meth:`loss` for training: the weighted CRF NLL plus the method's weighted
  :meth:`auxiliary_losses`, every part in the log;
- :meth:`decode` (BIO labels per tweet) and :meth:`evaluate` (span scores),
  which never compute a loss, in any of the model's :attr:`views`;
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

from .. import __version__
from ..data.labels import BIO_LABELS
from ..graph import schema
from ..graph.transforms import KeepRelations
from ..io import atomic_save
from ..metrics import span_scores
from ..nn.crf import CRF
from ..nn.encoder import TextEncoder
from ..nn.standardize import FeatureStandardizer
from ..nn.tagging import TagScheme

EdgeType = tuple[str, str, str]

#: Bumped whenever a checkpoint's layout changes; :func:`graphmner.models.load`
#: refuses other formats with a message instead of failing half-way.
CHECKPOINT_FORMAT = 2


@dataclass
class MNEROutput:
    """What :meth:`MNERModel.forward` returns (after transformers'
    ``TokenClassifierOutput``, without the loss: :meth:`MNERModel.loss`
    computes it)."""

    emissions: Tensor                 # [B, T, C] CRF emission scores over words
    mask: Tensor                      # [B, T] bool prefix mask of real words
    extras: dict[str, Tensor] = field(default_factory=dict)  # what auxiliary_losses reads
    counts: dict[str, int] = field(default_factory=dict)     # events for the log, summed per epoch


@dataclass
class EncoderConfig:
    """Fields every model config starts with."""

    encoder: str = 'bert-base-uncased'  # hub name or local folder of the text encoder
    max_length: int = 128               # subword budget of the encoder
    dropout: float = 0.1                # on the word states before the emission layer
    # Forbid transitions the tag scheme rules out, in training and decoding alike. The official
    # codes of UMGF, MAF, HVPNeT (GMF) and ITA constrain nothing: their configs set it false.
    constrained_decoding: bool = True
    # Train on IOB2-repaired labels (word.y: a chunk-starting I-X as B-X); False: on the file's
    # labels as written, as the BIO official codes do (only Twitter-2015 has such labels). False
    # needs an unconstrained 'bio' CRF; BIOES (flair, ITA's code) always repairs.
    repair_targets: bool = True
    tag_scheme: str = 'bio'             # the CRF's tags: 'bio', or 'bioes' (E- ends, S- single)

    def __post_init__(self):
        if not self.repair_targets and (self.constrained_decoding or self.tag_scheme != 'bio'):
            raise ValueError(f"repair_targets=False trains on the file's stray I- labels, which need "
                             f"constrained_decoding=False and tag_scheme 'bio' (got "
                             f'{self.constrained_decoding} and {self.tag_scheme!r}): a constrained '
                             'CRF cannot score them and BIOES cannot write them')


class MNERModel(nn.Module):
    """Base class: subclasses set ``name``, ``config_class``, ``relations``,
    ``node_types`` (and ``views`` if they have several) and implement
    :meth:`forward`; methods with extra objectives add
    :meth:`auxiliary_losses` and :meth:`loss_weights`.

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
    #: The edge types the model reads; the data pipeline drops the others.
    relations: ClassVar[tuple[EdgeType, ...]] = (schema.WORD_NEXT, )
    #: The node types the model reads besides those the relations touch
    #: (``word`` and ``image`` always stay).
    node_types: ClassVar[tuple[str, ...]] = ()
    #: The inference views; ``run.py`` scores each one when there are several.
    views: ClassVar[tuple[str, ...]] = ('default', )
    #: The views whose mean dev F1 selects the best checkpoint; empty: the view in force.
    selection_views: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: EncoderConfig, labels: Sequence[str] = BIO_LABELS, *, pooler: bool = False):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f'{type(self).__name__} needs a {self.config_class.__name__}, '
                            f'got {type(config).__name__}')
        self.config = config
        self.labels = tuple(labels)
        self._label_id = {label: i for i, label in enumerate(self.labels)}
        self.tagging = TagScheme(self.labels, config.tag_scheme)
        self.encoder = TextEncoder(config.encoder, max_length=config.max_length, pooler=pooler)
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
        self.data_config: dict[str, Any] = {}

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
        the model reads; none here."""
        return ()

    # -- shared plumbing ------------------------------------------------------------
    def graph_transform(self) -> Compose:
        """What the data pipeline applies to every graph before batching."""
        return Compose([KeepRelations(self.relations, self.node_types), *self.graph_transforms()])

    @staticmethod
    def words_of(batch: Batch) -> list[list[str]]:
        """The tweets' words (a :class:`Batch` collates them into one list per graph)."""
        if not isinstance(batch, Batch):
            raise TypeError(f'Models read a torch_geometric Batch of tweet graphs, got '
                            f'{type(batch).__name__} (use Batch.from_data_list([...]))')
        return batch.words

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
            y = torch.tensor([self._label_id[label] for labels in batch.labels for label in labels],
                             dtype=torch.long, device=y.device)
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
    def decode(self, batch: Batch) -> list[list[str]]:
        """Viterbi labels per tweet (one BIO label per word)."""
        out = self(batch)
        paths = self.crf.decode(out.emissions, out.mask)  # [B, T], -1 at padding
        return self.tagging.to_labels(paths, out.mask.sum(1).tolist())

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
        nodes of ``graphs`` (the training split), skipping the ``image`` node
        of tweets whose image is missing. A standardizer that sees no node
        stays the identity."""
        standardizers = [m for m in self.modules() if isinstance(m, FeatureStandardizer)]
        if not standardizers:
            return
        wanted = {t for m in standardizers for t in m.node_types}
        rows: dict[str, list[Tensor]] = {t: [] for t in wanted}
        for g in graphs:
            missing = bool(g[schema.IMAGE].missing.any()) if 'missing' in g[schema.IMAGE] else False
            for t in wanted:
                if t not in g.node_types or 'x' not in g[t] or (t == schema.IMAGE and missing):
                    continue
                rows[t].append(g[t].x)
        for m in standardizers:
            m.fit([r for t in m.node_types for r in rows[t]])

    # -- persistence -----------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {'format': CHECKPOINT_FORMAT, 'graphmner_version': __version__, 'model': self.name,
                'config': dataclasses.asdict(self.config), 'labels': list(self.labels),
                'data': self.data_config, 'state_dict': self.state_dict()}

    def save(self, path: str | os.PathLike) -> None:
        """Writes the checkpoint atomically (temporary file, then rename)."""
        atomic_save(self.checkpoint(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = 'cpu') -> MNERModel:
        from . import load  # the registry dispatches on the stored name
        model = load(path, map_location=map_location)
        if not isinstance(model, cls):
            raise TypeError(f"'{path}' holds a '{model.name}' model, not {cls.__name__}")
        return model

    def extra_repr(self) -> str:
        return f"labels={len(self.labels)}, tags={len(self.tags)} ({self.config.tag_scheme})"
