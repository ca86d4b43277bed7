"""BERT-CRF: the text-only baseline every multimodal method must beat.

Word states from the fine-tuned encoder (first subword) -> dropout -> linear ->
CRF. It reads only the ``word`` nodes of the tweet graph.

Tagging unit and CRF (issue 25). By default words are tagged (first-subword
states) by an IOB2-constrained CRF on IOB2-repaired targets.
UMT's BERT-CRF baseline tags every subword piece and constrains nothing:
``--set model.tagging_unit=subword --set model.constrained_decoding=false
--set model.repair_targets=false`` (:mod:`graphmner.nn.subword`; scores stay
word-level). On bert-crf (Twitter-2017, MiniLM, 3 epochs, seeds 1-3) the
unconstrained, unrepaired CRF loses 1.09 F1, hence the default; README's
before / after table has both switches measured.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn
from torch_geometric.data import Batch

from ..data.labels import BIO_LABELS
from .base import EncoderConfig, MNERModel, MNEROutput


@dataclass
class BertCRFConfig(EncoderConfig):
    """BERT-CRF has no settings beyond the encoder's."""


class BertCRF(MNERModel):
    r"""Text-only BERT-CRF tagger.

    Args:
        config (BertCRFConfig): encoder name, max length, dropout, decoding constraints.
        labels (Sequence[str], optional): BIO labels in id order. (default: :obj:`BIO_LABELS`)

    Shapes:
        - **input:** a :class:`~torch_geometric.data.Batch` of B tweet graphs
          with ``words`` and (for training) ``word.y``
        - **output:** emissions :math:`(B, T, C)` over the T words of the longest tweet
    """

    name = 'bert-crf'
    config_class = BertCRFConfig

    def __init__(self, config: BertCRFConfig, labels: Sequence[str] = BIO_LABELS):
        super().__init__(config, labels)
        self.dropout = nn.Dropout(config.dropout)
        self.emission = nn.Linear(self.encoder.hidden_size, len(self.tags))

    def forward(self, batch: Batch) -> MNEROutput:
        text = self.encoder(self.words_of(batch))
        self.check_words(batch, text.word_mask)
        emissions = self.emission(self.dropout(text.words))  # [B, T, C]
        return MNEROutput(emissions, text.word_mask)
