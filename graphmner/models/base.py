"""The one contract every graphmner model honours (after flair's ``Model``).

A model reads a PyG :class:`~torch_geometric.data.Batch` of tweet graphs and
returns CRF emissions over the tweets' words. On top of :meth:`forward` every
model gets, from this class:

- :meth:`loss` for training (the method's full objective, auxiliary terms included),
- :meth:`decode` (BIO labels per tweet) and :meth:`evaluate` (span scores),
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

from ..data.labels import BIO_LABELS
from ..graph import schema
from ..metrics import span_scores
from ..nn.crf import CRF, bio_constraints
from ..nn.encoder import TextEncoder

EdgeType = tuple[str, str, str]


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
    constrained_decoding: bool = True   # forbid I-X after O / another type in the CRF


class MNERModel(nn.Module):
    """Base class: subclasses set ``name``, ``config_class``, ``relations`` and
    implement :meth:`forward`.

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
        self.config = config
        self.labels = tuple(labels)
        self.encoder = TextEncoder(config.encoder, max_length=config.max_length)
        constraints = bio_constraints(self.labels) if config.constrained_decoding else None
        self.crf = CRF(len(self.labels), constraints=constraints)

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

    @staticmethod
    def dense_labels(batch: Batch) -> Tensor | None:
        """``batch['word'].y`` as ``[B, T]`` (0 at padding), or None without labels."""
        y = getattr(batch[schema.WORD], 'y', None)
        if y is None:
            return None
        store = batch[schema.WORD]
        dense, _ = to_dense_batch(y, store.batch, fill_value=0, batch_size=batch.num_graphs)
        return dense

    def crf_output(self, batch: Batch, emissions: Tensor, mask: Tensor, **logs: float) -> MNEROutput:
        """Wraps emissions into an :class:`MNEROutput` with the CRF NLL when the
        batch has labels."""
        tags = self.dense_labels(batch)
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
        """Viterbi labels per tweet (one per word)."""
        out = self(batch)
        paths = self.crf.decode(out.emissions, out.mask)  # [B, T], -1 at padding
        lengths = out.mask.sum(1).tolist()
        return [[self.labels[i] for i in row[:n]] for row, n in zip(paths.tolist(), lengths)]

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
        return f"labels={len(self.labels)}"


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
