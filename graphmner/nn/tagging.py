r"""The tag scheme a CRF runs on: BIO labels in, CRF tags out, and back.

The data and every output of graphmner speak IOB2 (``labels``); the CRF may
run on the same labels (``'bio'``) or on their BIOES expansion (``'bioes'``,
ITA's official code: ``E-`` closes a chunk, ``S-`` is a one-word chunk).
:class:`TagScheme` keeps the two in one place: the tag set, the CRF's
transition constraints, the conversion of gold BIO ids into tag ids (one
vectorised lookup per batch) and the conversion of decoded tag paths back to
BIO labels.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..data.labels import bioes_tag_set, bioes_to_bio, split_label
from .crf import bio_constraints, bioes_constraints

TAG_SCHEMES = ('bio', 'bioes')


class TagScheme(nn.Module):
    r"""BIO labels <-> CRF tags for one label set.

    Args:
        labels (Sequence[str]): the BIO label set in id order (``'O'`` and
            ``B-``/``I-`` of each type).
        scheme (str, optional): ``'bio'`` (tags = labels) or ``'bioes'``.
            (default: :obj:`'bio'`)

    Shapes:
        - :meth:`to_tags`: gold BIO ids :math:`(B, T)` and mask :math:`(B, T)`
          -> tag ids :math:`(B, T)`
        - :meth:`to_labels`: decoded tag paths :math:`(B, T)` (``-1`` at
          padding) and lengths -> B lists of BIO labels
    """

    def __init__(self, labels: Sequence[str], scheme: str = 'bio'):
        super().__init__()
        if scheme not in TAG_SCHEMES:
            raise ValueError(f"tag_scheme must be one of {TAG_SCHEMES}, got {scheme!r}")
        self.labels = tuple(labels)
        self.scheme = scheme
        self.tags = bioes_tag_set(self.labels) if scheme == 'bioes' else self.labels
        if scheme == 'bioes':
            self._register_bioes_lookup()

    def _register_bioes_lookup(self) -> None:
        """Buffers for :meth:`to_tags`: each BIO id's BIOES tag id when the next
        word does not / does continue its chunk, and the id of its ``I-``."""
        tag_id = {tag: i for i, tag in enumerate(self.tags)}
        bio_to_tag, inside_of = [], []
        for label in self.labels:
            prefix, entity_type = split_label(label)
            if prefix == 'O':
                bio_to_tag.append([tag_id['O']] * 2)
                inside_of.append(-1)
                continue
            ends = 'S' if prefix == 'B' else 'E'
            bio_to_tag.append([tag_id[f'{ends}-{entity_type}'], tag_id[label]])
            inside_of.append(self.labels.index(f'I-{entity_type}'))
        self.register_buffer('bio_to_tag', torch.tensor(bio_to_tag), persistent=False)  # [C_bio, 2]
        self.register_buffer('inside_of', torch.tensor(inside_of), persistent=False)    # [C_bio]

    @property
    def num_tags(self) -> int:
        return len(self.tags)

    def constraints(self) -> tuple[Tensor, ...]:
        """The CRF's allowed transitions, starts (and, for BIOES, ends)."""
        return (bioes_constraints if self.scheme == 'bioes' else bio_constraints)(self.tags)

    def to_tags(self, bio: Tensor, mask: Tensor) -> Tensor:
        """Gold CRF tag ids from gold BIO ids (padding stays 0)."""
        if self.scheme == 'bio':
            return bio
        bio_to_tag, inside_of = self.bio_to_tag.to(bio.device), self.inside_of.to(bio.device)
        following = torch.cat([bio[:, 1:], bio.new_zeros(bio.shape[0], 1)], dim=1)
        following_real = torch.cat([mask[:, 1:], mask.new_zeros(mask.shape[0], 1)], dim=1)
        continues = (following == inside_of[bio]) & following_real  # [B, T] the chunk goes on
        return bio_to_tag[bio, continues.long()]

    def to_labels(self, paths: Tensor, lengths: Sequence[int]) -> list[list[str]]:
        """BIO labels of decoded tag paths, one list of ``lengths[b]`` per row."""
        tags = [[self.tags[i] for i in row[:n]] for row, n in zip(paths.tolist(), lengths)]
        return [bioes_to_bio(row) for row in tags] if self.scheme == 'bioes' else tags

    def extra_repr(self) -> str:
        return f"labels={len(self.labels)}, tags={len(self.tags)} ({self.scheme})"
