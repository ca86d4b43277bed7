r"""Reader and writer for the ``IMGID:`` CoNLL format of the Twitter MNER data.

The Twitter-2015 (Zhang et al., 2018) and Twitter-2017 (Lu et al., 2018)
releases store one tweet per block: an ``IMGID:<id>`` line naming the tweet's
photo (``<id>.jpg`` in the image folder), one ``token<TAB>label`` line per
token, then a blank line::

    IMGID:1015799
    RT	O
    George	B-PER
    Zimmerman	I-PER
    got	O

    IMGID:...

Labels are IOB2 over ``PER``, ``LOC``, ``ORG`` and ``MISC``; Twitter-2015
spells ``MISC`` as ``OTHER``, which :func:`read_conll` maps to ``MISC``.

:func:`read_conll` returns a :class:`ConllTweets` list that remembers the
file's layout (line ending, byte-order mark, how ``MISC`` was spelled, how the
file ends), so that :func:`write_conll` writes the released files back byte
for byte.

Example:
    >>> tweets = read_conll('twitter2015/train.txt')
    >>> tweets[0].words[:3], tweets[0].labels[:3]
    (['RT', '@JayKenMinaj', '_'], ['O', 'O', 'O'])
    >>> write_conll(tweets, 'copy.txt')  # identical to train.txt
"""
from __future__ import annotations

import codecs
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .labels import BIO_LABELS
from .paths import image_id_problem

__all__ = [
    'Tweet',
    'ConllLayout',
    'ConllTweets',
    'ConllFormatError',
    'ConllFormatWarning',
    'read_conll',
    'write_conll',
]

PathLike = str | os.PathLike[str]

_IMGID = 'IMGID:'

# On-disk spelling -> canonical label. Twitter-2015's OTHER is our MISC; other
# datasets may use any entity types (``B-DRUG``), spelled as they are.
_CANONICAL = {label: label for label in BIO_LABELS}
_CANONICAL.update({'B-OTHER': 'B-MISC', 'I-OTHER': 'I-MISC'})
_ANY_LABEL = re.compile(r'[BI]-[A-Za-z][A-Za-z0-9_]*')


def _canonical(label: str) -> str | None:
    """The label as graphmner names it, or None if it is not an IOB2 label."""
    if label in _CANONICAL:
        return _CANONICAL[label]
    return label if _ANY_LABEL.fullmatch(label) else None
_MISC_SPELLING = {'B-MISC': 'MISC', 'I-MISC': 'MISC',
                  'B-OTHER': 'OTHER', 'I-OTHER': 'OTHER'}


@dataclass
class Tweet:
    """One tweet: its photo's id and its tokens with IOB2 labels.

    Args:
        image_id: The photo's file name without extension (the ``IMGID:``).
        words: The tweet's tokens, as released (hashtags, @mentions and URLs
            included).
        labels: One label of :data:`~graphmner.data.labels.BIO_LABELS` per
            token (``MISC``, never ``OTHER``).

    Raises:
        ValueError: If ``words`` and ``labels`` differ in length.
    """

    image_id: str
    words: list[str]
    labels: list[str]

    def __post_init__(self) -> None:
        if len(self.words) != len(self.labels):
            raise ValueError(
                f"Tweet {self.image_id!r} has {len(self.words)} words but "
                f"{len(self.labels)} labels")


@dataclass(frozen=True)
class ConllLayout:
    """How a CoNLL file is laid out on disk, beyond its tweets.

    The defaults are those of Twitter-2017 (and of most CoNLL files).

    Args:
        newline: The line ending, ``'\n'`` or ``'\r\n'``.
        bom: Whether the file starts with a UTF-8 byte-order mark.
        misc_spelling: How ``MISC`` labels are written, ``'MISC'`` or
            ``'OTHER'`` (Twitter-2015).
        trailing_newlines: Line endings after the last token: 2 when the file
            ends with a blank line (Twitter-2017), 1 when it ends right after
            the last token line (Twitter-2015), 0 when that line is
            unterminated.

    Raises:
        ValueError: If a field has a value other than those above.
    """

    newline: str = '\n'
    bom: bool = False
    misc_spelling: str = 'MISC'
    trailing_newlines: int = 2

    def __post_init__(self) -> None:
        if self.newline not in ('\n', '\r\n'):
            raise ValueError(f"newline must be '\\n' or '\\r\\n', got {self.newline!r}")
        if self.misc_spelling not in ('MISC', 'OTHER'):
            raise ValueError(
                f"misc_spelling must be 'MISC' or 'OTHER', got {self.misc_spelling!r}")
        if not isinstance(self.trailing_newlines, int) or self.trailing_newlines < 0:
            raise ValueError(
                f"trailing_newlines must be an int >= 0, got {self.trailing_newlines!r}")

    @property
    def ends_with_blank_line(self) -> bool:
        """Whether a blank line follows the last tweet."""
        return self.trailing_newlines >= 2


class ConllTweets(list):
    """The ``list`` of :class:`Tweet` that :func:`read_conll` returns, plus the
    file's :class:`ConllLayout` in :attr:`layout`.

    Slicing and concatenation give plain lists, which :func:`write_conll`
    writes with the default layout unless it is passed ``layout=``.

    Args:
        tweets: The tweets.
        layout: The layout of the file they were read from.
    """

    def __init__(self, tweets: Iterable[Tweet] = (), layout: ConllLayout = ConllLayout()):
        super().__init__(tweets)
        self.layout = layout


class ConllFormatError(ValueError):
    """A CoNLL file that cannot be read; the message starts ``path:line:``.

    Args:
        path: The file.
        line: The 1-based number of the offending line.
        reason: What is wrong with it.

    Attributes:
        path: The file, as it was given to the reader.
        line: The 1-based number of the offending line.
        reason: The message without the location.
    """

    def __init__(self, path: PathLike, line: int, reason: str):
        super().__init__(f"{os.fspath(path)}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason

    def __reduce__(self):
        # The default reduce passes only the formatted message back to
        # __init__, which breaks unpickling (e.g. out of DataLoader workers).
        return type(self), (self.path, self.line, self.reason)


class ConllFormatWarning(UserWarning):
    """A CoNLL file that reads, but with content that deserves a look."""


def _image_id_problem(image_id: str) -> str | None:
    """Why ``image_id`` cannot name a photo file, or None if it can."""
    if not image_id:
        return "empty image id"
    if any(c.isspace() for c in image_id):
        return (f"image id {image_id!r} contains whitespace; "
                f"it must be a file name without extension")
    problem = image_id_problem(image_id)
    return f"{problem}; it must be a file name without extension" if problem else None


def _words_problem(words: Sequence[str]) -> str | None:
    """Why ``words`` would not read back as written, or None if they would."""
    if not words:
        return "no words"
    for word in words:
        if not word or '\t' in word or '\n' in word or word.startswith(_IMGID):
            return (f"word {word!r} is empty, contains a tab or newline, or starts "
                    f"with {_IMGID!r}")
        if not word.isascii() and any('\ud800' <= c <= '\udfff' for c in word):
            return f"word {word!r} is not valid Unicode (a lone surrogate), so not UTF-8"
    return None


def _stray_continuations(labels: list[str]) -> list[int]:
    """The indices of the ``I-X`` labels that do not continue an ``X`` chunk."""
    stray = []
    previous_type = ''
    for i, label in enumerate(labels):
        entity_type = label[2:]  # '' for 'O'
        if label[0] == 'I' and entity_type != previous_type:
            stray.append(i)
        previous_type = entity_type
    return stray


def read_conll(path: PathLike) -> list[Tweet]:
    """Reads an ``IMGID:`` CoNLL file into tweets.

    ``OTHER`` labels become ``MISC``. Files with CRLF line endings or a UTF-8
    byte-order mark read the same as plain ones. Tweets may be separated by
    more than one blank line and need not be separated at all (an ``IMGID:``
    line always begins a tweet); :func:`write_conll` writes one blank line.

    An ``I-X`` that follows ``O``, another type or nothing is kept as written
    (the released Twitter-2015 files contain some, and the published scores
    were computed on them); one :class:`ConllFormatWarning` per file reports
    how many tweets have one.

    Args:
        path: The file.

    Returns:
        A :class:`ConllTweets` (a ``list`` of :class:`Tweet`) whose ``layout``
        lets :func:`write_conll` reproduce the file.

    Raises:
        ConllFormatError: If the file is not valid UTF-8, has no tweets, or
            has a token line without exactly one tab, an empty token, an
            unknown label, a token line outside a tweet, an ``IMGID:`` line
            whose id is not a plain file name (see
            :func:`~graphmner.data.paths.image_id_problem`: no path, no control
            character, not overlong), or an ``IMGID:`` line followed by no
            token lines. The error names the line.
        OSError: If the file cannot be read.
    """
    raw = Path(path).read_bytes()
    bom = raw.startswith(codecs.BOM_UTF8)
    if bom:
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b'\n', 0, err.start) + 1
        raise ConllFormatError(
            path, raw.count(b'\n', 0, err.start) + 1,
            f"invalid UTF-8 byte 0x{raw[err.start]:02x} at byte "
            f"{err.start - line_start + 1} of the line") from None

    first_newline = text.find('\n')
    newline = '\r\n' if first_newline > 0 and text[first_newline - 1] == '\r' else '\n'
    # Normalise every CRLF, not only in CRLF files, so that one stray CR does
    # not end up inside a label.
    if '\r\n' in text:
        text = text.replace('\r\n', '\n')
    trailing_newlines = len(text) - len(text.rstrip('\n'))

    tweets = ConllTweets()
    misc_spellings: dict[str, None] = {}  # an ordered set: first spelling first
    ill_formed_tweets = ill_formed_tags = first_ill_formed_line = 0

    image_id = ''
    words: list[str] = []
    labels: list[str] = []
    header_line = 0  # line of the current tweet's IMGID:, 0 between tweets
    seen_header = False

    def finish_tweet() -> None:
        nonlocal ill_formed_tweets, ill_formed_tags, first_ill_formed_line
        if not words:
            raise ConllFormatError(
                path, header_line, f"'{_IMGID}{image_id}' is followed by no token lines")
        stray = _stray_continuations(labels)
        if stray:
            ill_formed_tweets += 1
            ill_formed_tags += len(stray)
            if not first_ill_formed_line:
                first_ill_formed_line = header_line + 1 + stray[0]
        tweets.append(Tweet(image_id, words, labels))

    for line_number, line in enumerate(text.split('\n'), 1):
        if not line:
            if header_line:
                finish_tweet()
                header_line = 0
            continue
        if line.startswith(_IMGID):
            if header_line:
                finish_tweet()
            image_id = line[len(_IMGID):]
            problem = _image_id_problem(image_id)
            if problem:
                raise ConllFormatError(path, line_number, problem)
            words, labels = [], []
            header_line = line_number
            seen_header = True
            continue
        if not header_line:
            if seen_header:
                reason = (f"token line {line!r} follows a blank line, which ends a "
                          f"tweet; a new tweet starts with an '{_IMGID}<id>' line")
            else:
                reason = (f"token line {line!r} comes before any '{_IMGID}<id>' line; "
                          f"every tweet starts with one")
            raise ConllFormatError(path, line_number, reason)
        word, tab, label = line.partition('\t')
        if not tab or '\t' in label:
            tabs = line.count('\t')
            raise ConllFormatError(
                path, line_number,
                f"expected 'token<TAB>label' with exactly one tab, got {line!r} "
                f"({tabs} tabs)")
        if not word:
            raise ConllFormatError(path, line_number, f"empty token in {line!r}")
        canonical = _canonical(label)
        if canonical is None:
            raise ConllFormatError(
                path, line_number,
                f"unknown label {label!r}; expected 'O' or B-<TYPE>/I-<TYPE> (e.g. {BIO_LABELS[1:3]}; "
                f"B-OTHER/I-OTHER are read as MISC)")
        spelling = _MISC_SPELLING.get(label)
        if spelling:
            misc_spellings[spelling] = None
        words.append(word)
        labels.append(canonical)
    if header_line:
        finish_tweet()

    if not tweets:
        raise ConllFormatError(path, 1, "no tweets: the file is empty or blank")
    if ill_formed_tweets:
        warnings.warn(
            f"{os.fspath(path)}: {ill_formed_tweets} tweets contain I- after O or "
            f"after another type ({ill_formed_tags} such labels, the first at line "
            f"{first_ill_formed_line}); kept as written (conlleval-style chunking "
            f"reads each as the start of an entity)",
            ConllFormatWarning, stacklevel=2)
    spellings = list(misc_spellings)
    if len(spellings) > 1:
        warnings.warn(
            f"{os.fspath(path)}: MISC is spelled both {spellings[0]} and "
            f"{spellings[1]}; both read as MISC, and write_conll will write "
            f"{spellings[0]}", ConllFormatWarning, stacklevel=2)

    tweets.layout = ConllLayout(
        newline=newline, bom=bom,
        misc_spelling=spellings[0] if spellings else 'MISC',
        trailing_newlines=trailing_newlines)
    return tweets


def write_conll(tweets: Sequence[Tweet], path: PathLike, *,
                layout: ConllLayout | None = None) -> None:
    """Writes tweets in the ``IMGID:`` CoNLL format, one blank line between
    tweets.

    ``write_conll(read_conll(p), q)`` makes ``q`` a byte-for-byte copy of any
    file ``p`` whose tweets are separated by exactly one blank line, with one
    line ending and one spelling of ``MISC`` throughout (all released files).

    Args:
        tweets: The tweets; labels from
            :data:`~graphmner.data.labels.BIO_LABELS`.
        path: The file to write (replaced if it exists).
        layout: How to lay the file out. (default: ``tweets.layout`` if
            ``tweets`` came from :func:`read_conll`, else :class:`ConllLayout`'s
            defaults)

    Raises:
        ValueError: If there are no tweets, or a tweet cannot be written so
            that it reads back the same: an image id that is empty or not a
            file name, no words, an empty word, a word with a tab or newline
            or that starts with ``IMGID:``, or a label outside
            :data:`~graphmner.data.labels.BIO_LABELS`.
        OSError: If the file cannot be written.
    """
    if layout is None:
        layout = getattr(tweets, 'layout', None) or ConllLayout()
    if not tweets:
        raise ValueError(f"No tweets to write to {os.fspath(path)}")
    on_disk = {label: label.replace('MISC', layout.misc_spelling) for label in BIO_LABELS}
    on_disk.update({label: label for tweet in tweets for label in tweet.labels
                    if label not in on_disk and _ANY_LABEL.fullmatch(label) and not label.endswith('-OTHER')})

    blocks = []
    for index, tweet in enumerate(tweets):
        problem = _image_id_problem(tweet.image_id) or _words_problem(tweet.words)
        if problem:
            raise ValueError(
                f"Cannot write tweet {index} ({tweet.image_id!r}): {problem}")
        try:
            lines = [f'{word}\t{on_disk[label]}'
                     for word, label in zip(tweet.words, tweet.labels)]
        except KeyError as err:
            raise ValueError(
                f"Cannot write tweet {index} ({tweet.image_id!r}): unknown label "
                f"{err.args[0]!r}; expected 'O' or B-<TYPE>/I-<TYPE> (OTHER is written as MISC)") from None
        blocks.append(f"{_IMGID}{tweet.image_id}\n" + '\n'.join(lines))

    text = '\n\n'.join(blocks) + '\n' * layout.trailing_newlines
    if layout.newline != '\n':
        text = text.replace('\n', layout.newline)
    data = text.encode('utf-8')
    Path(path).write_bytes(codecs.BOM_UTF8 + data if layout.bom else data)
