"""The one contract every graphmner model honours (after flair's ``Model``).

A model reads a PyG :class:`~torch_geometric.data.Batch` of tweet graphs and
returns CRF emissions over the tweets' words. On top of :meth:`forward` every
model gets, from this class:

- :meth:`loss` for training (the method's full objective, auxiliary terms included),
- :meth:`decode` (BIO labels per tweet) and :meth:`evaluate` (span scores),
  whichever tag scheme (BIO or BIOES) the CRF runs on,
- :meth:`save` / :func:`load` that record the class by its registry name, its
  config and its labels, so a checkpoint rebuilds itself.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import to_dense_batch

from ..data.labels import BIO_LABELS, bioes_tag_set, bioes_to_bio
from ..graph import schema
from ..metrics import span_scores
from ..nn.crf import CRF, bio_constraints, bioes_constraints
from ..nn.encoder import TextEncoder

EdgeType = tuple[str, str, str]

TAG_SCHEMES = ('bio', 'bioes')


@dataclass
class MNEROutput:
    """What :meth:`MNERModel.forward` returns (after transformers'
    ``TokenClassifierOutput``)."""

    emissions: Tensor                 # [B, T, C] CRF emission scores over words
    mask: Tensor                      # [B, T] bool prefix mask of real words
    loss: Tensor | None = None     # scalar, when the batch carries labels
    logs: dict[str, float] = field(default_factory=dict)  # loss parts for the log


@dataclass
class EncoderConfig:
    """Fields every model config starts with."""

    encoder: str = 'bert-base-uncased'  # hub name or local folder of the text encoder
    max_length: int = 128               # subword budget of the encoder
    dropout: float = 0.1                # on the word states before the emission layer
    constrained_decoding: bool = True   # forbid transitions the tag scheme rules out
    tag_scheme: str = 'bio'             # the CRF's tags: 'bio', or 'bioes' (E- ends, S- single)


class MNERModel(nn.Module):
    """Base class: subclasses set ``name``, ``config_class``, ``relations`` and
    implement :meth:`forward`.

    The data and every output speak IOB2 (``labels``); the CRF runs on
    ``tags``, which are the same labels for ``tag_scheme='bio'`` and their
    BIOES expansion for ``'bioes'`` (ITA's official code tags in BIOES): gold
    labels are converted on the way in, decoded paths on the way out.

    Args:
        config: the model's config dataclass (a subclass of :class:`EncoderConfig`).
        labels (Sequence[str], optional): the BIO label set, in id order.
            (default: :obj:`BIO_LABELS`)
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    #: The edge types the model reads; the data pipeline drops the others.
    relations: ClassVar[tuple[EdgeType, ...]] = (schema.WORD_NEXT, )

    def __init__(self, config: EncoderConfig, labels: Sequence[str] = BIO_LABELS):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f'{type(self).__name__} needs a {self.config_class.__name__}, '
                            f'got {type(config).__name__}')
        if config.tag_scheme not in TAG_SCHEMES:
            raise ValueError(f"tag_scheme must be one of {TAG_SCHEMES}, got {config.tag_scheme!r}")
        self.config = config
        self.labels = tuple(labels)
        self.encoder = TextEncoder(config.encoder, max_length=config.max_length)
        self.tags = bioes_tag_set(self.labels) if config.tag_scheme == 'bioes' else self.labels
        constraints = (bioes_constraints if config.tag_scheme == 'bioes' else bio_constraints)(self.tags)
        self.crf = CRF(len(self.tags), constraints=constraints if config.constrained_decoding else None)
        if config.tag_scheme == 'bioes':
            self._register_bioes_lookup()

    def _register_bioes_lookup(self) -> None:
        """Buffers for :meth:`target_tags`: each BIO id's BIOES tag id when the
        next word does not / does continue its chunk, and the id of its ``I-``."""
        tag_id = {tag: i for i, tag in enumerate(self.tags)}
        bio_to_tag, inside_of = [], []
        for label in self.labels:
            if label == 'O':
                bio_to_tag.append([tag_id['O']] * 2)
                inside_of.append(-1)
                continue
            prefix, entity_type = label.split('-', 1)
            ends = 'S' if prefix == 'B' else 'E'
            bio_to_tag.append([tag_id[f'{ends}-{entity_type}'], tag_id[label]])
            inside_of.append(self.labels.index(f'I-{entity_type}'))
        self.register_buffer('bio_to_tag', torch.tensor(bio_to_tag), persistent=False)  # [C_bio, 2]
        self.register_buffer('inside_of', torch.tensor(inside_of), persistent=False)    # [C_bio]

    # -- the part each method writes ----------------------------------------------
    def forward(self, batch: Batch) -> MNEROutput:
        raise NotImplementedError

    # -- shared plumbing ------------------------------------------------------------
    @staticmethod
    def words_of(batch: Batch) -> list[list[str]]:
        """The tweets' words (a :class:`Batch` collates them into one list per graph)."""
        if not isinstance(batch, Batch):
            raise TypeError(f'Models read a torch_geometric Batch of tweet graphs, got '
                            f'{type(batch).__name__} (use Batch.from_data_list([...]))')
        return batch.words

    def target_tags(self, batch: Batch) -> Tensor | None:
        """The gold CRF tags ``[B, T]`` (0 at padding) from the BIO ids in
        ``batch['word'].y``, or None without labels."""
        y = getattr(batch[schema.WORD], 'y', None)
        if y is None:
            return None
        store = batch[schema.WORD]
        bio, mask = to_dense_batch(y, store.batch, fill_value=0, batch_size=batch.num_graphs)  # [B, T]
        if self.config.tag_scheme == 'bio':
            return bio
        bio_to_tag, inside_of = self.bio_to_tag.to(bio.device), self.inside_of.to(bio.device)
        following = torch.cat([bio[:, 1:], bio.new_zeros(bio.shape[0], 1)], dim=1)
        following_real = torch.cat([mask[:, 1:], mask.new_zeros(mask.shape[0], 1)], dim=1)
        continues = (following == inside_of[bio]) & following_real  # [B, T] the chunk goes on
        return bio_to_tag[bio, continues.long()]

    def crf_output(self, batch: Batch, emissions: Tensor, mask: Tensor, **logs: float) -> MNEROutput:
        """Wraps emissions into an :class:`MNEROutput` with the CRF NLL when the
        batch has labels."""
        tags = self.target_tags(batch)
        loss = None
        if tags is not None:
            tags = tags[:, :emissions.shape[1]].to(emissions.device)
            loss = self.crf.nll(emissions, tags, mask)
        return MNEROutput(emissions, mask, loss, dict(logs))

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """The training objective and its parts (for the log)."""
        out = self(batch)
        if out.loss is None:
            raise ValueError("The batch has no word labels ('word.y'); cannot compute a loss")
        return out.loss, {'loss': float(out.loss.detach()), **out.logs}

    @torch.no_grad()
    def decode(self, batch: Batch) -> list[list[str]]:
        """Viterbi labels per tweet (one BIO label per word)."""
        out = self(batch)
        paths = self.crf.decode(out.emissions, out.mask)  # [B, T], -1 at padding
        lengths = out.mask.sum(1).tolist()
        tags = [[self.tags[i] for i in row[:n]] for row, n in zip(paths.tolist(), lengths)]
        if self.config.tag_scheme == 'bioes':
            return [bioes_to_bio(row) for row in tags]
        return tags

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

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(encoder parameters, everything else): they get separate learning rates."""
        encoder = list(self.encoder.parameters())
        ids = {id(p) for p in encoder}
        return encoder, [p for p in self.parameters() if id(p) not in ids]

    # -- persistence -----------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {'model': self.name, 'config': dataclasses.asdict(self.config),
                'labels': list(self.labels), 'state_dict': self.state_dict()}

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


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename, so an
    interrupted write never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
