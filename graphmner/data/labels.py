r"""The BIO label set of graphmner and conversions between tagging schemes.

All datasets are read into IOB2 ("BIO") labels over four entity types. Label
ids follow the fixed order of :data:`BIO_LABELS`, so a checkpoint's output
layer means the same thing on every dataset.

Example:
    >>> bio_to_bioes(['B-PER', 'I-PER', 'O', 'B-LOC'])
    ['B-PER', 'E-PER', 'O', 'S-LOC']
    >>> label_to_id(['O', 'B-PER'])
    [0, 1]
"""
from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

__all__ = [
    'ENTITY_TYPES',
    'BIO_LABELS',
    'split_label',
    'repair_iob2',
    'LABEL2ID',
    'label_to_id',
    'id_to_label',
    'bio_to_bioes',
    'bioes_to_bio',
    'allowed_bio_transitions',
    'allowed_bio_starts',
    'bioes_tag_set',
    'allowed_bioes_transitions',
    'allowed_bioes_starts',
    'allowed_bioes_ends',
]

#: Entity types, in the order their labels take in :data:`BIO_LABELS`.
#: Twitter-2015 spells ``MISC`` as ``OTHER``; the reader maps it.
ENTITY_TYPES: tuple[str, ...] = ('PER', 'LOC', 'ORG', 'MISC')

#: The fixed label set in id order: ``'O'``, then ``B-`` and ``I-`` of each type.
BIO_LABELS: tuple[str, ...] = ('O',) + tuple(
    f'{prefix}-{entity_type}' for entity_type in ENTITY_TYPES for prefix in 'BI')

#: Read-only ``label -> id`` map over :data:`BIO_LABELS` (the inverse is
#: :data:`BIO_LABELS` itself); in the shape transformers' ``label2id`` takes.
LABEL2ID: Mapping[str, int] = MappingProxyType(
    {label: i for i, label in enumerate(BIO_LABELS)})


def label_to_id(labels: Iterable[str]) -> list[int]:
    """Maps labels of :data:`BIO_LABELS` to their ids.

    Args:
        labels: BIO labels, e.g. one tweet's.

    Returns:
        The id of each label, in order.

    Raises:
        ValueError: If a label is not in :data:`BIO_LABELS`.
    """
    try:
        return [LABEL2ID[label] for label in labels]
    except KeyError as err:
        raise ValueError(
            f"Unknown label {err.args[0]!r}; expected one of {BIO_LABELS}") from None


def id_to_label(ids: Iterable[int]) -> list[str]:
    """Maps label ids back to labels of :data:`BIO_LABELS`.

    Args:
        ids: Label ids; any integer type (Python, NumPy, 0-d integer tensors).

    Returns:
        The label of each id, in order.

    Raises:
        ValueError: If an id is outside ``[0, len(BIO_LABELS))``.
        TypeError: If an id is not an integer.
    """
    labels = []
    for label_id in ids:
        # operator.index rejects floats instead of silently truncating them.
        i = operator.index(label_id)
        if not 0 <= i < len(BIO_LABELS):
            raise ValueError(
                f"Label id {i} is out of range; expected 0 <= id < {len(BIO_LABELS)}")
        labels.append(BIO_LABELS[i])
    return labels


def split_label(label: str, prefixes: str = 'BI') -> tuple[str, str]:
    """Splits ``'B-PER'`` into ``('B', 'PER')`` and ``'O'`` into ``('O', '')``.

    Args:
        label: One label.
        prefixes: The chunk prefixes the scheme allows (``'BI'`` for IOB2,
            ``'BIES'`` for BIOES). (default: ``'BI'``)

    Raises:
        ValueError: If the label is neither ``'O'`` nor ``<prefix>-<type>``.
    """
    if label == 'O':
        return 'O', ''
    if isinstance(label, str) and len(label) > 2 and label[1] == '-' and label[0] in prefixes:
        return label[0], label[2:]
    raise ValueError(
        f"Malformed label {label!r}; expected 'O' or one of "
        f"{', '.join(p + '-<TYPE>' for p in prefixes)}")


def bio_to_bioes(labels: Sequence[str]) -> list[str]:
    """Converts one sequence from IOB2 to BIOES (``S-`` single, ``E-`` end).

    An ``I-X`` that does not continue an ``X`` chunk (it follows ``O``, another
    type, or begins the sequence) begins a chunk, as conlleval reads it, so it
    becomes ``B-X`` or ``S-X``. Such input therefore does not survive
    :func:`bioes_to_bio` unchanged: it comes back repaired to valid IOB2.

    Args:
        labels: IOB2 labels of one sequence (any entity types).

    Returns:
        The BIOES labels, one per input label.

    Raises:
        ValueError: If a label is neither ``'O'`` nor ``B-``/``I-`` prefixed.
    """
    parts = [split_label(label) for label in repair_iob2(labels)]
    bioes = []
    for i, (prefix, entity_type) in enumerate(parts):
        if prefix == 'O':
            bioes.append('O')
            continue
        following = parts[i + 1] if i + 1 < len(parts) else ('O', '')
        continues = following == ('I', entity_type)
        if prefix == 'B':
            bioes.append(f"{'B' if continues else 'S'}-{entity_type}")
        else:
            bioes.append(f"{'I' if continues else 'E'}-{entity_type}")
    return bioes


def bioes_to_bio(labels: Sequence[str]) -> list[str]:
    """Converts one sequence from BIOES to IOB2 (``S-X -> B-X``, ``E-X -> I-X``).

    Args:
        labels: BIOES labels of one sequence (``BIOU``/``BILOU`` spellings are
            not accepted).

    Returns:
        The IOB2 labels, one per input label.

    Raises:
        ValueError: If a label is neither ``'O'`` nor ``B-``/``I-``/``E-``/``S-``
            prefixed.
    """
    to_bio = {'O': 'O', 'B': 'B', 'I': 'I', 'E': 'I', 'S': 'B'}
    bio = []
    for label in labels:
        prefix, entity_type = split_label(label, 'BIES')
        bio.append('O' if prefix == 'O' else f'{to_bio[prefix]}-{entity_type}')
    return bio


def allowed_bio_transitions(
        labels: Sequence[str] = BIO_LABELS) -> list[tuple[int, int]]:
    """The label transitions IOB2 allows, for constrained CRF decoding.

    ``I-X`` may only follow ``B-X`` or ``I-X``; ``O`` and every ``B-`` may
    follow anything. Which labels may begin a sequence is
    :func:`allowed_bio_starts`; IOB2 lets every label end one.

    Args:
        labels: The label set in id order. (default: :data:`BIO_LABELS`)

    Returns:
        Every allowed ``(from_id, to_id)`` pair, sorted.

    Raises:
        ValueError: If a label is neither ``'O'`` nor ``B-``/``I-`` prefixed.
    """
    parts = [split_label(label, 'BI') for label in labels]
    # 'O' has the empty type, so it never matches the type of an I- label.
    return [(i, j)
            for i, (_, from_type) in enumerate(parts)
            for j, (to_prefix, to_type) in enumerate(parts)
            if to_prefix != 'I' or from_type == to_type]


def allowed_bio_starts(labels: Sequence[str] = BIO_LABELS) -> list[int]:
    """The ids of the labels that may begin an IOB2 sequence (all but ``I-``).

    Args:
        labels: The label set in id order. (default: :data:`BIO_LABELS`)

    Returns:
        The allowed first-label ids, sorted.

    Raises:
        ValueError: If a label is neither ``'O'`` nor ``B-``/``I-`` prefixed.
    """
    return [i for i, label in enumerate(labels) if split_label(label, 'BI')[0] != 'I']


def bioes_tag_set(labels: Sequence[str] = BIO_LABELS) -> tuple[str, ...]:
    """The BIOES tag set of an IOB2 label set: ``'O'``, then ``B-``, ``I-``,
    ``E-``, ``S-`` of each entity type in the order the types first appear.

    Args:
        labels: An IOB2 label set. (default: :data:`BIO_LABELS`)

    Raises:
        ValueError: If a label is neither ``'O'`` nor ``B-``/``I-`` prefixed.
    """
    types = dict.fromkeys(split_label(label, 'BI')[1] for label in labels)
    types.pop('', None)
    return ('O',) + tuple(f'{prefix}-{entity_type}' for entity_type in types for prefix in 'BIES')


def allowed_bioes_transitions(labels: Sequence[str]) -> list[tuple[int, int]]:
    """The tag transitions BIOES allows, for constrained CRF decoding.

    Inside a chunk (after ``B-X`` or ``I-X``) only ``I-X`` or ``E-X`` may
    follow; outside one (after ``O``, ``E-``, ``S-``) only ``O``, ``B-`` or
    ``S-`` of any type.

    Args:
        labels: The BIOES tag set in id order (e.g. :func:`bioes_tag_set`).

    Returns:
        Every allowed ``(from_id, to_id)`` pair, sorted.

    Raises:
        ValueError: If a tag is neither ``'O'`` nor ``B-``/``I-``/``E-``/``S-`` prefixed.
    """
    parts = [split_label(label, 'BIES') for label in labels]
    return [(i, j)
            for i, (from_prefix, from_type) in enumerate(parts)
            for j, (to_prefix, to_type) in enumerate(parts)
            if (to_prefix in 'IE' and to_type == from_type if from_prefix in 'BI'
                else to_prefix in 'OBS')]


def allowed_bioes_starts(labels: Sequence[str]) -> list[int]:
    """The ids of the BIOES tags that may begin a sequence: ``O``, ``B-``, ``S-``."""
    return [i for i, label in enumerate(labels) if split_label(label, 'BIES')[0] in 'OBS']


def allowed_bioes_ends(labels: Sequence[str]) -> list[int]:
    """The ids of the BIOES tags that may end a sequence: ``O``, ``E-``, ``S-``."""
    return [i for i, label in enumerate(labels) if split_label(label, 'BIES')[0] in 'OES']


def repair_iob2(labels: Sequence[str]) -> list[str]:
    """Rewrites each ``I-X`` that starts a chunk (after ``O``, after another
    type, or first) as ``B-X``: the chunk conlleval reads there anyway.

    Training targets go through this so that a CRF constrained to IOB2 never
    meets an impossible gold path (Twitter-2015's released files have such
    labels); scores are still computed on the labels as written.

    Example:
        >>> repair_iob2(['O', 'I-PER', 'I-PER', 'I-LOC'])
        ['O', 'B-PER', 'I-PER', 'B-LOC']
    """
    out: list[str] = []
    previous_type = ''
    for label in labels:
        prefix, type_ = split_label(label, 'BI')
        if prefix == 'I' and type_ != previous_type:
            label = f'B-{type_}'
        out.append(label)
        previous_type = type_
    return out
