r"""A batched linear-chain CRF over dense ``[B, T, C]`` emissions, built on
`pytorch-crf <https://github.com/kmkurn/pytorch-crf>`_.

Every method in graphmner ends in this layer: word states go to ``[B, T, C]``
emissions with :func:`torch_geometric.utils.to_dense_batch`, whose bool mask is
the prefix (length) mask this layer expects.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torchcrf
from torch import Tensor

from ..data.labels import (
    allowed_bio_starts,
    allowed_bio_transitions,
    allowed_bioes_ends,
    allowed_bioes_starts,
    allowed_bioes_transitions,
)

# Added to the score of a disallowed transition. Finite rather than -inf so
# that masked sums (0 * score) and forward-backward stay free of NaN; it is
# the value AllenNLP and flair use.
DISALLOWED_SCORE = -10000.0

REDUCTIONS = ('none', 'sum', 'mean', 'token_mean')


def _as_masks(num_tags: int, transitions: Sequence[tuple[int, int]],
              *boundaries: Sequence[int]) -> tuple[Tensor, ...]:
    """Allowed ``(from, to)`` pairs and allowed start (and end) ids as the bool
    masks :class:`CRF` takes: :math:`(C, C)`, then :math:`(C)` each."""
    allowed_transitions = torch.zeros(num_tags, num_tags, dtype=torch.bool)
    for i, j in transitions:
        allowed_transitions[i, j] = True
    masks = [allowed_transitions]
    for ids in boundaries:
        allowed = torch.zeros(num_tags, dtype=torch.bool)
        allowed[list(ids)] = True
        masks.append(allowed)
    return tuple(masks)


def bio_constraints(labels: Sequence[str]) -> tuple[Tensor, Tensor]:
    r"""Allowed transitions and start tags of IOB2 tagging: ``I-X`` may only
    follow ``B-X`` or ``I-X``, so it can neither start a sentence nor follow
    ``O`` or another type.

    Args:
        labels (Sequence[str]): the tag set in tag-id order, e.g.
            ``['O', 'B-PER', 'I-PER', ...]``.

    Returns:
        Tuple[Tensor, Tensor]: ``allowed_transitions`` :math:`(C, C)` bool,
        indexed ``[from, to]``, and ``allowed_start`` :math:`(C)` bool; pass
        them as :obj:`constraints` to :class:`CRF`.
    """
    return _as_masks(len(labels), allowed_bio_transitions(labels), allowed_bio_starts(labels))


def bioes_constraints(labels: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
    r"""Allowed transitions, start and end tags of BIOES tagging: a chunk opened
    by ``B-X`` continues with ``I-X`` and closes with ``E-X``; ``S-X`` is a
    one-word chunk; no sequence starts inside a chunk or ends in one.

    Args:
        labels (Sequence[str]): the BIOES tag set in tag-id order, e.g.
            :func:`~graphmner.data.labels.bioes_tag_set`.

    Returns:
        Tuple[Tensor, Tensor, Tensor]: ``allowed_transitions`` :math:`(C, C)`
        bool indexed ``[from, to]``, ``allowed_start`` and ``allowed_end``
        :math:`(C)` bool; pass them as :obj:`constraints` to :class:`CRF`.
    """
    return _as_masks(len(labels), allowed_bioes_transitions(labels), allowed_bioes_starts(labels),
                     allowed_bioes_ends(labels))


class CRF(torchcrf.CRF):
    r"""A linear-chain conditional random field from the `"Conditional Random
    Fields: Probabilistic Models for Segmenting and Labeling Sequence Data"
    <https://repository.upenn.edu/cis_papers/159/>`_ paper, batched over
    ``[B, T, C]`` emissions with a prefix mask.

    A subclass of :class:`torchcrf.CRF` (with ``batch_first=True``): the
    parameters ``start_transitions`` :math:`(C)`, ``end_transitions``
    :math:`(C)` and ``transitions`` :math:`(C, C)` (indexed ``[from, to]``),
    their initialisation and the state-dict keys are pytorch-crf's, so
    checkpoints load in either class. On top of it this layer adds

    - :meth:`decode`: Viterbi vectorised over the batch (a loop over time
      only, in NumPy), returning a padded tensor and exactly the paths of
      :meth:`torchcrf.CRF.decode`, ties included;
    - :meth:`nll`, the training loss, with a vectorised gold-path score;
    - :meth:`marginals` / :meth:`log_marginals`: token posteriors by
      forward-backward in log space, optionally tempered;
    - optional hard transition constraints (e.g. from
      :func:`bio_constraints` or :func:`bioes_constraints`), applied alike in training, decoding and
      marginals so that the loss and the decoder agree.

    :meth:`forward` keeps pytorch-crf's meaning (the log-likelihood, summed by
    default); prefer :meth:`nll`.

    Args:
        num_tags (int): number of tags :math:`C`.
        constraints (Tuple[Tensor, ...], optional): ``(allowed_transitions,
            allowed_start)`` or ``(allowed_transitions, allowed_start,
            allowed_end)``, bool tensors of shapes :math:`(C, C)` (indexed
            ``[from, to]``) and :math:`(C)`. Disallowed transitions, start
            and end tags get :obj:`-10000` added to their score. A gold sequence that
            breaks a constraint (e.g. an ``I-X`` after ``O`` in noisy data)
            then costs about :obj:`10000` in :meth:`nll`; repair such labels
            before training. (default: :obj:`None`)

    Shapes:
        - **input:** emissions :math:`(B, T, C)`, mask :math:`(B, T)` bool
          with every row a prefix of :obj:`True` of length at least 1, tags
          :math:`(B, T)` long (values at padding are ignored)
        - **output:** :meth:`nll` :math:`()` or :math:`(B)`; :meth:`decode`
          :math:`(B, T)` long, :obj:`-1` at padding; :meth:`marginals`
          :math:`(B, T, C)`
    """
    def __init__(
        self,
        num_tags: int,
        *,
        constraints: tuple[Tensor, ...] | None = None,
    ) -> None:
        super().__init__(num_tags, batch_first=True)
        transition_penalty = torch.zeros(num_tags, num_tags)
        start_penalty = torch.zeros(num_tags)
        end_penalty = torch.zeros(num_tags)
        if constraints is not None:
            shapes = [(num_tags, num_tags), (num_tags, ), (num_tags, )]
            if len(constraints) not in (2, 3) or any(
                    c.dtype != torch.bool or c.shape != shape
                    for c, shape in zip(constraints, shapes)):
                got = ', '.join(f'{c.dtype} {tuple(c.shape)}'
                                for c in constraints)
                raise ValueError(
                    f"Expected constraints as 2 or 3 bool tensors of shapes "
                    f"({num_tags}, {num_tags}), ({num_tags},)[, "
                    f"({num_tags},)], got {len(constraints)}: {got}")
            for penalty, allowed in zip(
                    (transition_penalty, start_penalty, end_penalty),
                    constraints):
                penalty.masked_fill_(~allowed, DISALLOWED_SCORE)
        self.constrained = constraints is not None
        # Not persistent: constraints come from the label set at construction,
        # and the state dict stays interchangeable with pytorch-crf's.
        self.register_buffer('transition_penalty', transition_penalty,
                             persistent=False)
        self.register_buffer('start_penalty', start_penalty, persistent=False)
        self.register_buffer('end_penalty', end_penalty, persistent=False)

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        # Computed once per call, so the per-step sums below are the same
        # floating-point operations pytorch-crf performs.
        return (self.start_transitions + self.start_penalty,
                self.transitions + self.transition_penalty,
                self.end_transitions + self.end_penalty)

    def _check(self, emissions: Tensor, mask: Tensor | None,
               tags: Tensor | None = None) -> Tensor:
        if emissions.dim() != 3 or emissions.size(-1) != self.num_tags \
                or emissions.size(1) == 0:
            raise ValueError(f"Expected emissions of shape (B, T >= 1, "
                             f"{self.num_tags}), got {tuple(emissions.shape)}")
        if tags is not None and (tags.shape != emissions.shape[:2]
                                 or tags.dtype != torch.long):
            raise ValueError(f"Expected long tags of shape "
                             f"{tuple(emissions.shape[:2])}, got {tags.dtype} "
                             f"{tuple(tags.shape)}")
        if mask is None:
            return emissions.new_ones(emissions.shape[:2], dtype=torch.bool)
        if mask.dtype != torch.bool:
            raise ValueError(f"Expected a bool mask, got dtype {mask.dtype} "
                             f"(use mask.bool())")
        if mask.shape != emissions.shape[:2]:
            raise ValueError(f"Expected a mask of shape "
                             f"{tuple(emissions.shape[:2])}, got "
                             f"{tuple(mask.shape)}")
        empty = ~mask[:, 0]
        gap = (mask[:, 1:] & ~mask[:, :-1]).any(dim=1)
        if (empty | gap).any():  # one host sync for both checks
            if empty.any():
                rows = empty.nonzero().view(-1).tolist()
                raise ValueError(f"The mask must be on at the first timestep "
                                 f"of every sequence (the CRF cannot score an "
                                 f"empty sequence), got it off in rows "
                                 f"{rows[:10]}")
            rows = gap.nonzero().view(-1).tolist()
            raise ValueError(f"Expected a prefix (length) mask, got rows "
                             f"{rows[:10]} with an off timestep followed by "
                             f"an on one")
        return mask

    def forward(
        self,
        emissions: Tensor,
        tags: Tensor,
        mask: Tensor | None = None,
        reduction: str = 'sum',
    ) -> Tensor:
        r"""Returns the log-likelihood of :obj:`tags`, with pytorch-crf's
        signature and default (``reduction='sum'``) so that code written for
        :class:`torchcrf.CRF` keeps working; constraints apply. Training code
        should call :meth:`nll`.

        Args:
            emissions (torch.Tensor): emission scores :math:`(B, T, C)`.
            tags (torch.Tensor): gold tags :math:`(B, T)`.
            mask (torch.Tensor, optional): prefix mask :math:`(B, T)` bool;
                all on when :obj:`None`. (default: :obj:`None`)
            reduction (str, optional): ``'none'``, ``'sum'``, ``'mean'`` (over
                sequences) or ``'token_mean'`` (over real tokens).
                (default: :obj:`'sum'`)

        :rtype: :class:`torch.Tensor`
        """
        if reduction not in REDUCTIONS:
            raise ValueError(f"Expected reduction in {REDUCTIONS}, got "
                             f"{reduction!r}")
        mask = self._check(emissions, mask, tags)
        emissions = emissions.float()  # half emissions under autocast: the forward algorithm runs in float32
        start, transitions, end = self._scores()

        # Gold-path score, vectorised over time. Padding tags may hold any
        # value (e.g. -100), so they are replaced before indexing.
        tags = tags.masked_fill(~mask, 0)
        lengths = mask.sum(dim=1)  # (B,)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        moved = transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)  # (B,)
        gold = (start[tags[:, 0]] + end[last]
                + emitted.masked_fill(~mask, 0.0).sum(dim=1)
                + moved.masked_fill(~mask[:, 1:], 0.0).sum(dim=1))

        alpha = self._forward_scores(emissions, mask, start, transitions)
        log_z = torch.logsumexp(alpha[-1] + end, dim=1)  # (B,)
        llh = gold - log_z

        if reduction == 'none':
            return llh
        if reduction == 'sum':
            return llh.sum()
        if reduction == 'mean':
            return llh.mean()
        return llh.sum() / lengths.sum()

    def nll(
        self,
        emissions: Tensor,
        tags: Tensor,
        mask: Tensor | None = None,
        reduction: str = 'mean',
    ) -> Tensor:
        r"""Returns the negative log-likelihood of :obj:`tags`, the CRF
        training loss.

        Args:
            emissions (torch.Tensor): emission scores :math:`(B, T, C)`.
            tags (torch.Tensor): gold tags :math:`(B, T)`; values at padding
                are ignored.
            mask (torch.Tensor, optional): prefix mask :math:`(B, T)` bool;
                all on when :obj:`None`. (default: :obj:`None`)
            reduction (str, optional): ``'mean'`` (over sequences), ``'sum'``,
                ``'token_mean'`` (over real tokens) or ``'none'``.
                (default: :obj:`'mean'`)

        :rtype: :class:`torch.Tensor`
        """
        return -self.forward(emissions, tags, mask, reduction=reduction)

    def _forward_scores(self, emissions: Tensor, mask: Tensor, start: Tensor,
                        transitions: Tensor) -> Tensor:
        # alpha[t, b, j]: log-sum of the scores of all paths of sequence b
        # that end in tag j at step t (emission at t included). Held at the
        # last real step over padding, so alpha[-1] is each sequence's final.
        score = start + emissions[:, 0]  # (B, C)
        alphas = [score]
        for t in range(1, emissions.size(1)):
            step = score.unsqueeze(2) + transitions \
                + emissions[:, t].unsqueeze(1)  # (B, C_from, C_to)
            score = torch.where(mask[:, t].unsqueeze(1),
                                torch.logsumexp(step, dim=1), score)
            alphas.append(score)
        return torch.stack(alphas)  # (T, B, C)

    def _backward_scores(self, emissions: Tensor, mask: Tensor,
                         transitions: Tensor, end: Tensor) -> Tensor:
        # beta[t, b, i]: log-sum of the scores of all continuations of tag i
        # at step t to the end of sequence b (emission at t excluded).
        score = end.expand(emissions.size(0), -1)  # (B, C)
        betas = [score]
        for t in range(emissions.size(1) - 1, 0, -1):
            step = transitions \
                + (emissions[:, t] + score).unsqueeze(1)  # (B, C_from, C_to)
            # Over padding the score stays at end_transitions, which is
            # then the value at each sequence's last real step.
            score = torch.where(mask[:, t].unsqueeze(1),
                                torch.logsumexp(step, dim=2), score)
            betas.append(score)
        betas.reverse()
        return torch.stack(betas)  # (T, B, C)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        r"""Returns the highest-scoring tag sequences by Viterbi decoding,
        vectorised over the batch.

        The paths equal those of :meth:`torchcrf.CRF.decode`, ties included:
        every score is the same floating-point value, ``(score + transition)
        + emission`` in the promoted dtype, the best previous tag is the
        first one reaching the maximum, as with :meth:`torch.max`, and each
        sequence is traced back from its best last tag at its own length.

        The recursion runs in NumPy on the CPU: at :math:`C \approx 10` tags
        each step is a few microseconds of per-call overhead, which NumPy
        keeps well below PyTorch's. CUDA inputs are copied to the host and
        the result back, one synchronisation per call.

        Args:
            emissions (torch.Tensor): emission scores :math:`(B, T, C)`.
            mask (torch.Tensor, optional): prefix mask :math:`(B, T)` bool;
                all on when :obj:`None`. (default: :obj:`None`)

        Returns:
            torch.Tensor: tag ids :math:`(B, T)` long, :obj:`-1` at padding.
        """
        mask = self._check(emissions, mask).cpu().numpy()  # (B, T)
        dtype = torch.promote_types(emissions.dtype, self.transitions.dtype)
        start, transitions, end = (score.to('cpu', dtype).numpy()
                                   for score in self._scores())
        # Batch innermost, (T, C, B), so that every step below works on
        # contiguous rows of B rather than on rows of C.
        emitted = np.ascontiguousarray(
            emissions.to('cpu', dtype).numpy().transpose(1, 2, 0))
        tags = _viterbi(emitted, mask.sum(axis=1), start, transitions, end)
        return torch.from_numpy(tags).to(emissions.device)  # (B, T)

    def log_marginals(
        self,
        emissions: Tensor,
        mask: Tensor | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""Returns per-token log posteriors :math:`\log p(y_t = c \mid x)` by
        the forward-backward algorithm in log space, optionally tempered.

        With :obj:`temperature` :math:`\tau \neq 1` the result is
        :math:`\log \mathrm{softmax}_c(\log p(y_t = c \mid x) / \tau)`, i.e.
        :math:`\mathrm{softmax}((\alpha_t + \beta_t) / \tau)` in log space: the
        exact marginals sharpened or flattened token by token, which is what
        ITA's cross-view alignment distils (its ``temperature``). This is not
        the marginal of a CRF whose potentials were divided by :math:`\tau`.

        Args:
            emissions (torch.Tensor): emission scores :math:`(B, T, C)`.
            mask (torch.Tensor, optional): prefix mask :math:`(B, T)` bool;
                all on when :obj:`None`. (default: :obj:`None`)
            temperature (float, optional): :math:`\tau > 0`.
                (default: :obj:`1.0`)

        Returns:
            torch.Tensor: :math:`(B, T, C)`, differentiable; :obj:`0.0` at
            padding so that masked sums stay finite (mask it out).
        """
        if not temperature > 0:
            raise ValueError(f"Expected a positive temperature, got "
                             f"{temperature}")
        mask = self._check(emissions, mask)
        emissions = emissions.float()  # half emissions under autocast: forward-backward runs in float32
        start, transitions, end = self._scores()
        alpha = self._forward_scores(emissions, mask, start, transitions)
        beta = self._backward_scores(emissions, mask, transitions, end)
        log_z = torch.logsumexp(alpha[-1] + end, dim=1)  # (B,)
        log_p = (alpha + beta - log_z.view(1, -1, 1)).transpose(0, 1)
        if temperature != 1.0:
            log_p = torch.log_softmax(log_p / temperature, dim=-1)
        return log_p.masked_fill(~mask.unsqueeze(2), 0.0)  # (B, T, C)

    def marginals(
        self,
        emissions: Tensor,
        mask: Tensor | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""Returns per-token posteriors :math:`p(y_t = c \mid x)` by the
        forward-backward algorithm, optionally tempered as in
        :meth:`log_marginals`.

        Args:
            emissions (torch.Tensor): emission scores :math:`(B, T, C)`.
            mask (torch.Tensor, optional): prefix mask :math:`(B, T)` bool;
                all on when :obj:`None`. (default: :obj:`None`)
            temperature (float, optional): :math:`\tau > 0`.
                (default: :obj:`1.0`)

        Returns:
            torch.Tensor: :math:`(B, T, C)`, differentiable; rows sum to 1 at
            real tokens and are 0 at padding.
        """
        log_p = self.log_marginals(emissions, mask, temperature)
        if mask is None:
            return log_p.exp()
        return log_p.exp().masked_fill(~mask.unsqueeze(2), 0.0)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_tags={self.num_tags}, '
                f'constrained={self.constrained})')


def _viterbi(emitted: np.ndarray, lengths: np.ndarray, start: np.ndarray,
             transitions: np.ndarray, end: np.ndarray) -> np.ndarray:
    # emitted (T, C, B), lengths (B,), start (C,), transitions (C, C) indexed
    # [from, to], end (C,); returns the best tags (B, T), -1 at padding.
    seq_len, num_tags, batch_size = emitted.shape

    # The loop runs over padding too: real steps only depend on earlier real
    # steps, and the trace-back below never visits padding. Rounding is
    # monotone, so max_i fl(fl(s_i + T_ij) + e_j) = fl(max_i fl(s_i + T_ij)
    # + e_j): adding the emission after the max, to C x B numbers instead of
    # C x C x B, still gives exactly pytorch-crf's scores. Each step is three
    # NumPy calls into preallocated memory; the step sums are kept so that
    # the back-pointers are read off them afterwards in a few batched calls
    # rather than by an argmax per step.
    moved = np.ascontiguousarray(np.broadcast_to(
        transitions[:, :, None], (num_tags, num_tags, batch_size)))
    scores = np.empty_like(emitted)  # (T, C, B)
    steps = np.empty((seq_len, num_tags, num_tags, batch_size),
                     dtype=emitted.dtype)  # (T, C_from, C_to, B)
    np.add(start[:, None], emitted[0], out=scores[0])
    for prev, step, emission, score in zip(scores[:-1, :, None], steps[1:],
                                           emitted[1:], scores[1:]):
        np.add(prev, moved, out=step)  # (C_from, C_to, B)
        np.maximum.reduce(step, axis=0, out=score)  # (C_to, B)
        np.add(score, emission, out=score)

    # The best previous tag is the first one whose full sum (emission
    # included, as ties may only appear then) reaches the maximum: ranking
    # hits by C - from, the highest rank is the lowest index.
    steps = steps[1:]  # (T - 1, C_from, C_to, B)
    np.add(steps, emitted[1:, None], out=steps)
    rank = np.arange(num_tags, 0, -1,
                     dtype=np.min_scalar_type(num_tags))[:, None, None]
    hits = np.empty(steps.shape, dtype=rank.dtype)
    np.equal(steps, scores[1:, None], out=hits)  # (T - 1, C_from, C_to, B)
    hits *= rank
    best_prev = num_tags - np.maximum.reduce(hits, axis=1)  # (T - 1, C, B)

    # Back-pointers between flat indices of (step, tag, sequence) in a
    # (T, C, B) grid, so that each trace-back step is one 1-D integer index
    # (NumPy's fastest gather) and every sequence starts from its own last
    # step. The first step points to itself: a sequence that reaches it
    # early stays there while longer ones are traced on.
    plane = num_tags * batch_size
    batch = np.arange(batch_size)
    pointers = np.empty((seq_len, num_tags, batch_size), dtype=np.intp)
    pointers[0] = np.arange(plane).reshape(num_tags, batch_size)
    np.multiply(best_prev, batch_size, out=pointers[1:], dtype=np.intp)
    pointers[1:] += np.arange(0, plane * (seq_len - 1), plane)[:, None, None] \
        + batch
    pointers = pointers.reshape(-1)

    last = lengths - 1
    final = scores[last, :, batch] + end  # (B, C)
    index = last * plane + final.argmax(axis=1) * batch_size + batch  # (B,)
    visited = [index]
    for _ in range(seq_len - 1):
        index = pointers[index]
        visited.append(index)
    at_step, flat_tag = np.divmod(np.array(visited), plane)  # (T, B)
    tags = np.full((batch_size, seq_len), -1, dtype=np.int64)
    tags[batch, at_step] = flat_tag // batch_size
    return tags  # (B, T)
