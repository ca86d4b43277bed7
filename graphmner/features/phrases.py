r"""Noun phrases of tweets and UMGF's phrase-to-object grounding rule.

UMGF ("Multi-modal Graph Fusion for Named Entity Recognition with Targeted
Visual Guidance", Zhang et al., AAAI 2021) links a visual object to the words
of the noun phrase that names it, and an object named by no phrase (found
through a "general" word such as *person*) to every word. Its released code
grounds four fixed general words instead (:data:`GENERAL_WORDS`, UMGF's
``visual_input='official'``); here a detector finds objects
independently of the text, so the link is made by matching each phrase's head
to the object's class name (:func:`ground`).

Noun phrases come from spaCy's ``noun_chunks`` run on the tweet's own tokens,
so phrase spans index the graph's ``word`` nodes directly.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import torch
from torch import Tensor

if TYPE_CHECKING:
    from spacy.language import Language

#: Pipeline components not needed for noun chunks. The lemmatizer stays:
#: head lemmas let "dogs" ground a ``dog`` and "men" a ``person``.
EXCLUDED_COMPONENTS: Final[tuple[str, ...]] = ('ner', )

#: COCO class name -> words that name such an object in tweets (matched
#: against a phrase head's lowercase text and lemma). Only third-person
#: singular pronouns are listed: "I"/"you" usually mean the author or reader,
#: who is usually not in the photo.
SYNONYMS: Final[Mapping[str, tuple[str, ...]]] = {
    'person': ('man', 'woman', 'guy', 'girl', 'boy', 'lady', 'gentleman',
               'people', 'kid', 'child', 'baby', 'teen', 'teenager',
               'player', 'fan', 'crowd', 'family', 'friend', 'couple',
               'actor', 'actress', 'singer', 'rapper', 'star', 'mom', 'dad',
               'mother', 'father', 'son', 'daughter', 'wife', 'husband',
               'bride', 'groom', 'student', 'he', 'she'),
    'bicycle': ('bike', 'cycle'),
    'car': ('vehicle', 'auto', 'sedan', 'suv', 'taxi', 'cab'),
    'motorcycle': ('motorbike', 'bike'),
    'airplane': ('plane', 'aircraft', 'jet', 'airliner'),
    'bus': ('coach', ),
    'train': ('locomotive', 'railway', 'subway', 'metro', 'tram'),
    'truck': ('lorry', 'pickup'),
    'boat': ('ship', 'yacht', 'ferry', 'vessel', 'canoe', 'kayak'),
    'traffic light': ('stoplight', ),
    'fire hydrant': ('hydrant', ),
    'bird': ('eagle', 'parrot', 'duck', 'owl', 'pigeon', 'seagull', 'gull'),
    'cat': ('kitten', 'kitty'),
    'dog': ('puppy', 'pup', 'doggy', 'doggo', 'pooch', 'hound'),
    'horse': ('pony', 'stallion', 'mare'),
    'sheep': ('lamb', ),
    'cow': ('cattle', 'bull', 'calf'),
    'bear': ('cub', ),
    'backpack': ('rucksack', ),
    'handbag': ('purse', 'bag'),
    'tie': ('necktie', ),
    'suitcase': ('luggage', ),
    'sports ball': ('ball', 'football', 'basketball', 'soccerball'),
    'baseball bat': ('bat', ),
    'baseball glove': ('glove', 'mitt'),
    'tennis racket': ('racket', 'racquet'),
    'wine glass': ('glass', 'wine'),
    'cup': ('mug', 'coffee'),
    'donut': ('doughnut', ),
    'cake': ('cupcake', ),
    'chair': ('seat', ),
    'couch': ('sofa', ),
    'potted plant': ('plant', 'flower'),
    'dining table': ('table', ),
    'tv': ('television', 'screen'),
    'laptop': ('computer', 'notebook', 'macbook'),
    'remote': ('controller', ),
    'cell phone': ('phone', 'smartphone', 'iphone', 'cellphone', 'mobile'),
    'book': ('novel', ),
    'teddy bear': ('teddy', ),
    'hair drier': ('hairdryer', 'dryer'),
}

#: UMGF's four general words, in the order of its official code's crops
#: (``TransformersWsz/UMGF``: ``crop_person``, ``crop_miscellaneous``,
#: ``crop_location``, ``crop_organization``), each with the detector classes
#: (:data:`~graphmner.features.detector.COCO_CLASSES`) that show what it names.
#: The official crops come from a phrase-grounding model queried with the word;
#: of our offline detectors' classes only ``person`` (YOLO's, and the cascades'
#: faces and bodies) is such a thing: a place, an organisation or "something
#: miscellaneous" is no class of theirs, so those three words name none.
GENERAL_WORDS: Final[Mapping[str, tuple[str, ...]]] = {
    'person': ('person', ),
    'miscellaneous': (),
    'location': (),
    'organization': (),
}


@dataclass(frozen=True)
class NounPhrase:
    """A noun phrase as a span of the tweet's words.

    Attributes:
        start: Index of the first word.
        end: One past the index of the last word.
        root: Index of the head word.
        lemma: Lowercase lemma of the head word.
    """

    start: int
    end: int
    root: int
    lemma: str

    def __post_init__(self):
        if not self.start <= self.root < self.end:
            raise ValueError(f"NounPhrase needs start <= root < end (got "
                             f"start={self.start}, root={self.root}, "
                             f"end={self.end})")


def load_spacy(model: str | os.PathLike) -> Language:
    r"""Loads a spaCy pipeline for noun chunks, never downloading.

    A pipeline is loaded once per process and shared: a warm graph build
    calls this for every chunk of tweets, and loading took 0.9 s of a 1.1 s
    build of 4 tweets. The pipeline only reads the ``Doc`` objects it is
    given, so sharing it changes no phrase.

    Args:
        model (str or os.PathLike): An installed package name (e.g.
            ``'en_core_web_sm'``) or the path of a pipeline directory (the
            one holding ``config.cfg``).

    Raises:
        OSError: The model is neither an installed package nor a directory.
        ValueError: The pipeline cannot produce noun chunks.
    """
    path = Path(model).expanduser()
    return _load_spacy(str(path.resolve()) if path.exists() else str(model))


@functools.lru_cache(maxsize=4)
def _load_spacy(model: str) -> Language:
    """:func:`load_spacy` for a package name or an absolute pipeline path (the cache key)."""
    import spacy

    try:
        nlp = spacy.load(model, exclude=list(EXCLUDED_COMPONENTS))
    except OSError as e:
        raise OSError(
            f"spaCy model {str(model)!r} (--spacy-model, "
            f"PhraseExtractor(model=...)) is neither an installed package nor "
            f"a pipeline directory. Pass the path of an unpacked pipeline, "
            f"e.g. .../en_core_web_sm-3.8.0 (the folder with config.cfg); "
            f"nothing is downloaded automatically.") from e
    if 'parser' not in nlp.pipe_names:
        raise ValueError(
            f"spaCy model {str(model)!r} (--spacy-model) has no 'parser' "
            f"(components: {nlp.pipe_names}), which noun chunks need")
    return nlp


class PhraseExtractor:
    r"""Noun phrases of pre-tokenised tweets with spaCy's ``noun_chunks``.

    The pipeline runs on a :class:`spacy.tokens.Doc` built from the tweet's
    own tokens, so phrase spans index the tweet's words; spaCy's tokenizer
    never runs.

    Args:
        model (str or os.PathLike or spacy.language.Language, optional): A
            spaCy package name, pipeline path, or loaded pipeline.
            (default: :obj:`'en_core_web_sm'`)
        batch_size (int, optional): Tweets per :meth:`spacy.Language.pipe`
            batch. (default: :obj:`256`)

    Example:
        >>> extractor = PhraseExtractor('../shared/models/en_core_web_sm-3.8.0')
        >>> extractor(['Two', 'dogs', 'chase', 'a', 'ball'])
        [NounPhrase(start=0, end=2, root=1, lemma='dog'),
         NounPhrase(start=3, end=5, root=4, lemma='ball')]
    """

    def __init__(self, model: str | os.PathLike | Language = 'en_core_web_sm',
                 *, batch_size: int = 256):
        self.nlp = model if hasattr(model, 'pipe') else load_spacy(model)
        self.batch_size = batch_size

    def __call__(self, words: Sequence[str]) -> list[NounPhrase]:
        """The noun phrases of one tweet."""
        return self.batch([words])[0]

    def batch(self, tweets: Iterable[Sequence[str]]) -> list[list[NounPhrase]]:
        """The noun phrases of many tweets, through :meth:`nlp.pipe`."""
        from spacy.tokens import Doc

        docs = (Doc(self.nlp.vocab, words=_spacy_words(words))
                for words in tweets)
        return [[
            NounPhrase(chunk.start, chunk.end, chunk.root.i,
                       chunk.root.lemma_.lower())
            for chunk in doc.noun_chunks
        ] for doc in self.nlp.pipe(docs, batch_size=self.batch_size)]


def _spacy_words(words: Sequence[str]) -> list[str]:
    # spaCy rejects empty words and treats whitespace-only ones as spaces;
    # a placeholder keeps the word count, and so the alignment, intact.
    return [w if w.strip() else '_' for w in words]


@dataclass
class Grounding:
    """The result of :func:`ground`.

    Attributes:
        edge_index: ``[2, E]`` long, object -> word, sorted by object.
        matches: For each object, the indices of the phrases it matched;
            empty for a "general" object, which is linked to every word.
    """

    edge_index: Tensor
    matches: list[list[int]]

    @property
    def matched(self) -> Tensor:
        """``[K]`` bool: which objects matched a phrase."""
        return torch.tensor([bool(m) for m in self.matches], dtype=torch.bool)


def ground(
    words: Sequence[str],
    phrases: Sequence[NounPhrase],
    object_names: Sequence[str],
    *,
    synonyms: Mapping[str, Iterable[str]] = SYNONYMS,
    similarity: Callable[[str, str], float] | None = None,
    threshold: float = 0.5,
) -> Grounding:
    r"""UMGF's inter-modal edges between detected objects and tweet words.

    An object is matched to a phrase when the phrase's head word (its
    lowercase text without a leading ``#``, or its lemma) is the object's
    class name or one of its ``synonyms``, when the phrase contains a
    multi-word class name (``'a cell phone'``), or when
    ``similarity(phrase_text, class_name) >= threshold``. A matched object is
    linked to the words of every phrase it matched; an object that matched
    none is "general" and is linked to every word.

    Args:
        words (Sequence[str]): The tweet's words.
        phrases (Sequence[NounPhrase]): Its noun phrases.
        object_names (Sequence[str]): Class name of each detected object.
        synonyms (Mapping[str, Iterable[str]], optional): Class name ->
            words naming it. (default: :data:`SYNONYMS`)
        similarity (Callable[[str, str], float], optional): Scores a phrase's
            text against a class name, e.g. a cosine of sentence embeddings;
            tried only when no word matched. (default: :obj:`None`)
        threshold (float, optional): Minimum ``similarity`` for a match.
            (default: :obj:`0.5`)

    Returns:
        Grounding: ``edge_index`` ``[2, E]`` (object -> word) and each
        object's matched phrases.
    """
    lowered = [_normalise(w) for w in words]
    for phrase in phrases:
        if phrase.end > len(words):
            raise ValueError(f"phrase {phrase} ends past the tweet's "
                             f"{len(words)} words")

    matches = []
    for name in object_names:
        key = name.lower()
        terms = {key, *(t.lower() for t in synonyms.get(key, ()))}
        name_words = key.split()
        found = []
        for p, phrase in enumerate(phrases):
            span = lowered[phrase.start:phrase.end]
            if (lowered[phrase.root] in terms
                    or _normalise(phrase.lemma) in terms
                    or (len(name_words) > 1 and _contains(span, name_words))
                    or (similarity is not None and similarity(
                        ' '.join(words[phrase.start:phrase.end]), name)
                        >= threshold)):
                found.append(p)
        matches.append(found)

    src, dst = [], []
    for k, found in enumerate(matches):
        if found:
            targets = sorted({i for p in found
                              for i in range(phrases[p].start, phrases[p].end)})
        else:
            targets = range(len(words))
        src.extend([k] * len(targets))
        dst.extend(targets)
    edge_index = torch.tensor([src, dst], dtype=torch.long).view(2, -1)
    return Grounding(edge_index, matches)


def _normalise(word: str) -> str:
    return word.lower().lstrip('#')


def _contains(span: list[str], sub: list[str]) -> bool:
    n = len(sub)
    return any(span[i:i + n] == sub for i in range(len(span) - n + 1))
