r"""The states of a tweet's image-text words (``aux`` nodes: caption, OCR and
object-tag words), for the visual methods that read them beside their image
nodes (UMGF, MAF, GMF with ``aux_sources`` set; ITA reads them inside the
tweet's own sequence instead).

No paper of UMGF, MAF or GMF reads image text: this is graphmner's extension
(issue 28). The aux words are read by the model's own fine-tuned text encoder
as a sequence of their own, ``[CLS] aux [SEP]``, so the tweet's word states
stay exactly those of the text path, and the aux words come into the model
only through its fusion, as one more kind of visual node.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .encoder import TextEncoder


class AuxReader(nn.Module):
    r"""Aux word states from the text encoder, projected to the fusion width:

    .. math::
        \mathbf{a}_{b,j} = \mathbf{W} \, \mathrm{Enc}([\mathrm{CLS}]\, a_{b,1} \dots a_{b,A_b}\,
        [\mathrm{SEP}])_j + \mathbf{b}

    (first-subword pooling, as the tweet's words). Only the tweets that have
    aux words are encoded; a batch without any costs nothing and returns
    ``A = 0`` slots.

    Args:
        in_channels (int): the text encoder's width :math:`H`.
        out_channels (int): the width :math:`d` of the states returned (the
            model's node state width).

    Shapes:
        - **input:** a :class:`~graphmner.nn.encoder.TextEncoder` and ``aux_words``,
          B lists of strings (possibly empty)
        - **output:** states :math:`(B, A, d)` (zeros at padding) and a bool
          prefix mask :math:`(B, A)`, :math:`A` the most aux words of a tweet
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.projection = nn.Linear(in_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.xavier_uniform_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)

    def forward(self, encoder: TextEncoder, aux_words: Sequence[Sequence[str]]) -> tuple[Tensor, Tensor]:
        if encoder.hidden_size != self.in_channels:
            raise ValueError(f'{type(self).__name__} was built for an encoder of width {self.in_channels}, '
                             f'got one of width {encoder.hidden_size}')
        device = self.projection.weight.device
        B, A = len(aux_words), max((len(a) for a in aux_words), default=0)
        states = torch.zeros(B, A, self.out_channels, device=device)
        mask = torch.zeros(B, A, dtype=torch.bool, device=device)
        rows = [b for b, a in enumerate(aux_words) if a]
        if not rows:
            return states, mask
        # aux as words (one state each, whatever unit the tweet is tagged in): [B', A, H]
        read = encoder([list(aux_words[b]) for b in rows], subword_states=False)
        index = torch.tensor(rows, device=device)
        states = states.index_copy(0, index, self.projection(read.words) * read.word_mask.unsqueeze(-1))
        mask = mask.index_copy(0, index, read.word_mask)
        return states, mask

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.in_channels}, {self.out_channels})'
