r"""The subword tagging unit of UMT, MAF, UMGF and HVPNeT (GMF's closest code).

Their official codes fuse and tag every subword piece: a word's first piece
carries its label, each continuation piece the label ``X``, and only first
pieces are scored. graphmner's models tag words by default; with
``tagging_unit='subword'`` (:class:`~graphmner.models.base.EncoderConfig`)
the same models run on pieces:

- :class:`SubwordNodes` turns each ``word`` node of a tweet graph into one
  node per piece the encoder reads (:meth:`TextEncoder.pieces_per_word
  <graphmner.nn.encoder.TextEncoder.pieces_per_word>`), so every edge of a
  word becomes an edge of each of its pieces, and the relations built on
  demand (UMGF's word-word attention, MAF's region-word edges) are built over
  pieces: every piece is fused, as in the official codes;
- the encoder returns one state per piece (``subword_states=True``) and the
  CRF tags pieces, ``X`` a tag of its own;
- :func:`first_pieces` folds decoded pieces back to words, so every score
  (and every prediction) stays word-level.

Not reproduced: the official codes also tag ``[CLS]`` and ``[SEP]`` with
labels of their own; here the CRF chain starts at the first piece.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from ..graph import schema

#: The label of a continuation piece (UMT's and MAF's ``X``).
CONTINUATION = 'X'


class SubwordNodes(BaseTransform):
    r"""Splits each ``word`` node into one node per subword piece.

    A piece node keeps its word's attributes (``position``, and ``y`` on the
    first piece; continuation pieces get ``y = continuation_id``) and gains
    ``first`` (bool: the word's first piece). Each edge into or out of a word
    is repeated for every piece of that word (a word-word edge for every pair
    of their pieces), with its edge attributes. Graph-level ``words`` and
    ``labels`` stay the words': scores are computed on them.

    Args:
        pieces_per_word (Callable[[Sequence[str]], list[int]]): the encoder's
            piece count of each word (:meth:`TextEncoder.pieces_per_word`).
        continuation_id (int): the label id of ``X`` (the number of BIO labels).

    Shapes:
        - **input:** a tweet graph with :math:`W` word nodes and ``words``
        - **output:** the graph with :math:`P \geq W` piece nodes in the
          ``word`` store
    """

    def __init__(self, pieces_per_word: Callable[[Sequence[str]], list[int]], continuation_id: int):
        self.pieces_per_word = pieces_per_word
        self.continuation_id = continuation_id

    def forward(self, data: HeteroData) -> HeteroData:
        store = data[schema.WORD]
        if 'first' in store:
            raise ValueError("The graph's word nodes are already subword pieces (it has 'word.first'): "
                             'apply SubwordNodes once')
        counts = torch.tensor(self.pieces_per_word(data.words), dtype=torch.long)  # [W]
        W, P = store.num_nodes, int(counts.sum())
        if counts.numel() != W:
            raise ValueError(f"The graph has {W} word nodes but its 'words' list {counts.numel()} words")
        word_of = torch.repeat_interleave(torch.arange(W), counts)  # [P] each piece's word
        starts = torch.cumsum(counts, 0) - counts                     # [W] each word's first piece
        first = torch.zeros(P, dtype=torch.bool)
        first[starts] = True
        for key, value in list(store.items()):
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == W:
                store[key] = value[word_of]
        if 'y' in store:
            store.y = torch.where(first, store.y, torch.full_like(store.y, self.continuation_id))
        store.num_nodes = P
        store.first = first
        for edge_type in data.edge_types:
            src, _, dst = edge_type
            if schema.WORD not in (src, dst):
                continue
            edges = data[edge_type]
            keep = torch.arange(edges.edge_index.shape[1])
            index = edges.edge_index
            for side, node_type in ((0, src), (1, dst)):
                if node_type != schema.WORD:
                    continue
                # an edge of word w becomes counts[w] edges, one per piece of w
                repeats = counts[index[side]]
                keep, index = keep.repeat_interleave(repeats), index.repeat_interleave(repeats, dim=1)
                offset = torch.arange(index.shape[1]) - torch.repeat_interleave(
                    torch.cumsum(repeats, 0) - repeats, repeats)
                index[side] = starts[index[side]] + offset
            for key, value in list(edges.items()):
                if key != 'edge_index' and isinstance(value, Tensor) and value.dim() > 0 \
                        and value.shape[0] == edges.edge_index.shape[1]:
                    edges[key] = value[keep]
            edges.edge_index = index
        return data

    def __repr__(self) -> str:
        return f'{type(self).__name__}(continuation_id={self.continuation_id})'


def first_pieces(per_piece: Sequence[Sequence], first: Tensor, batch: Tensor) -> list[list]:
    """Per tweet, the items (labels, marginals) of its words' first pieces.

    Args:
        per_piece: B lists, one item per piece of the tweet.
        first: ``[P]`` bool over the batch's piece nodes (``word.first``).
        batch: ``[P]`` the tweet of each piece node (``word.batch``).
    """
    chosen: list[list] = [[] for _ in per_piece]
    seen = [0] * len(per_piece)
    for is_first, tweet in zip(first.tolist(), batch.tolist()):
        if is_first:
            chosen[tweet].append(per_piece[tweet][seen[tweet]])
        seen[tweet] += 1
    return chosen
