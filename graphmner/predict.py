r"""Tagging new tweets with a trained model (after flair's ``SequenceTagger.predict``).

    >>> from graphmner import Tagger
    >>> tagger = Tagger.load('runs/umgf-demo-seed1/best.pt')
    >>> tagger.predict('Barack Obama visits Paris with the Lakers', image='photo.jpg').entities
    >>> tagger.predict(words=['does', 'insulin', 'help'])        # one pre-split tweet
    >>> tagger.save_pretrained('models/umgf-demo')        # a model folder to share
    >>> Tagger.from_pretrained('models/umgf-demo')        # needs no other file

A checkpoint records how its training graphs were built (graph options,
caption file, tokenizer style, versions: :attr:`MNERModel.data_config`), and
:class:`Tagger` builds the graph of a new tweet the same way, through the same
extractors and feature cache. An extractor the model needs that cannot be
loaded here (vision weights it was trained with, say) is a
:class:`PredictionError`, never a silent fallback. A tweet without an image, or
with one that cannot be read, is tagged by the text path and flagged.

Each entity's confidence is the smallest posterior marginal (CRF
forward-backward) of the tags decoded over its words: a span is only as sure as
its least sure word, and it is 1.0 only when each of those marginals is.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Batch, HeteroData
from tqdm.auto import tqdm

from .data.conll import Tweet
from .data.images import load_image
from .data.tokenize import tokenize_tweet
from .graph import schema
from .graph.builder import GraphBuilder, backend_widths
from .graph.data_config import DataConfig
from .graph.datasets import DEFAULT_CACHE
from .metrics import get_spans
from .models import MNERModel, load, load_pretrained, save_pretrained
from .models.evidence import Evidence
from .render import RenderedHTML, render
from .train.profile import (
    BATCHING,
    BUILD_GRAPHS,
    DECODING,
    EXPLAIN,
    NULL_CLOCK,
    RESULTS,
    StageClock,
    profiling,
)


class PredictionError(ValueError):
    """A model cannot tag here (an extractor it needs is unavailable) or the
    input is unusable; the message is one line for the command line."""


@dataclass
class Entity:
    text: str          # the entity's words joined by spaces
    type: str          # entity type (PER, LOC, ...)
    start: int         # first word, 0-based
    end: int           # one past the last word
    confidence: float  # smallest marginal of the span's decoded tags, in (0, 1]


@dataclass
class Prediction:
    words: list[str]
    labels: list[str]                  # one BIO label per word
    entities: list[Entity]
    image: str | None = None           # the image given, if any
    image_used: bool = False           # whether visual evidence reached the model
    notes: list[str] = field(default_factory=list)  # why the image was not used, which view
    evidence: Evidence | None = None   # what the model read, with predict(..., explain=True)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.evidence is None:
            del out['evidence']
        return out

    def __str__(self) -> str:
        tagged = ' '.join(w if label == 'O' else f'{w}/{label}' for w, label in zip(self.words, self.labels))
        lines = [tagged] + [f'  {e.type:<5} {e.text!r} [{e.start}:{e.end}] {e.confidence:.3f}'
                            for e in self.entities]
        return '\n'.join(lines + [f'  ({note})' for note in self.notes])


def image_problem(path: str | os.PathLike) -> str | None:
    """Why the image at ``path`` gives no features (one of
    :data:`graphmner.data.images.PROBLEMS`), or :obj:`None` when it is usable."""
    return load_image(path).problem


def _is_word_list(value: Any) -> bool:
    """A pre-split tweet: a sequence of strings that is not itself a string."""
    return (isinstance(value, Sequence) and not isinstance(value, str)
            and all(isinstance(w, str) for w in value))


class Tagger:
    r"""A trained model ready to tag new tweets.

    Args:
        model (MNERModel): a trained model; its ``data_config`` says how its
            graphs were built.
        cache_dir (path, optional): graph / feature cache (the training
            default: ``graphs/cache``).
        device (str, optional): where the model runs. (default: :obj:`'cpu'`)
        batch_size (int, optional): tweets per forward pass. (default: :obj:`32`)
        captions (path, optional): a caption file (``<image_id>.jpg :<caption>``)
            for ITA's caption words; default: the one it was trained with.
        profile (StageClock, optional): charged with the wall-clock time of
            every :meth:`predict` call, stage by stage (graph building,
            batching, the model's forward by module, Viterbi decoding, CRF
            marginals, results: :mod:`graphmner.train.profile`); its hooks are
            on the model during the call only. (default: no profile, no hook)
    """

    def __init__(self, model: MNERModel, *, cache_dir: str | os.PathLike | None = None,
                 device: str | torch.device = 'cpu', batch_size: int = 32,
                 captions: str | os.PathLike | None = None, profile: StageClock | None = None):
        if batch_size < 1:
            raise ValueError(f"'batch_size' must be positive, got {batch_size}")
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size = batch_size
        data = model.data_config if model.data_config is not None else DataConfig()
        self.options = data.options
        self.tokenizer_style = data.tokenizer
        self.reads_images = model.needs_image_features(model.config)
        if self.reads_images:
            try:  # a checkpoint of features from another backend version would misread every photo
                model.config.check_visual_widths(backend_widths(self.options), "its graph options' backend")
            except ValueError as error:
                raise PredictionError(str(error)) from None
        caption_file = captions if captions is not None else data.captions
        if caption_file is not None and not Path(caption_file).is_file():
            raise PredictionError(f"the caption file '{caption_file}' does not exist")
        self.captions = caption_file
        self.cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
        self.transform = model.graph_transform()
        #: The checkpoint or model folder the tagger was loaded from (None: built from a model).
        self.source: Path | None = None
        self.profile = profile

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> Tagger:
        """A tagger for the checkpoint at ``path``: a run's ``best.pt``, or a model folder
        (:meth:`save_pretrained`)."""
        if Path(path).is_dir():
            return cls.from_pretrained(path, **kwargs)
        tagger = cls(load(path), **kwargs)
        tagger.source = Path(path)
        return tagger

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs: Any) -> Tagger:
        """A tagger for the model folder ``directory`` (written by :meth:`save_pretrained` or
        ``graphmner export-model``); it needs no other file, its text encoder included.

        Raises:
            ModelFolderError: not a graphmner model folder (another library's), or another format.
        """
        tagger = cls(load_pretrained(directory), **kwargs)
        tagger.source = Path(directory)
        return tagger

    def save_pretrained(self, directory: str | os.PathLike, run: str | os.PathLike | None = None) -> Path:
        """Writes the model as a model folder (``config.json``, ``model.safetensors``, the encoder's
        tokenizer and config, a ``README.md`` model card) and returns its path.

        Args:
            directory: a new or empty folder, or an earlier model folder (its model files replaced).
            run: the run folder whose ``metrics.json`` gives the card its scores (default: the
                folder of the ``best.pt`` this tagger was loaded from, if it has one).
        """
        if run is None and self.source is not None and self.source.is_file() and \
                (self.source.parent / 'metrics.json').is_file():
            run = self.source.parent
        return save_pretrained(self.model, directory, run=run)

    # -- building graphs ----------------------------------------------------------------
    def graphs(self, words: Sequence[Sequence[str]], images: Sequence[str | os.PathLike | None]
               ) -> list[HeteroData]:
        """The tweet graphs of pre-split tweets, built as in training."""
        tweets = [Tweet(Path(image).stem if image is not None else f'tweet{i}', list(w), ['O'] * len(w))
                  for i, (w, image) in enumerate(zip(words, images))]
        if any(len(t.words) == 0 for t in tweets):
            raise PredictionError('a tweet has no words: nothing to tag')
        use = [str(image) if image is not None and self.reads_images else None for image in images]
        builder = GraphBuilder(self.options, captions=self.captions, labels=self.model.labels,
                               feature_cache=self.cache_dir / 'features', progress=False)
        try:
            graphs, _ = builder(tweets, image_paths=use)
        except (FileNotFoundError, OSError, RuntimeError) as error:
            o = self.options
            raise PredictionError(f'the model needs the image extractors it was trained with '
                                  f'({o.vision_arch}, vision weights {o.vision_weights!r}, '
                                  f'detector {o.detector_arch} {o.detector_weights!r}), and they cannot be '
                                  f'loaded here: '
                                  f'{str(error).splitlines()[0]}') from None
        return graphs

    # -- tagging ----------------------------------------------------------------------------
    @torch.no_grad()
    def tag_graphs(self, graphs: Sequence[HeteroData]) -> list[tuple[list[str], list[float]]]:
        """BIO labels and the marginal of each decoded tag, per graph."""
        out = []
        clock = self.profile or NULL_CLOCK
        for start in range(0, len(graphs), self.batch_size):
            with clock.stage(BATCHING):
                # Shallow copies: the graph transforms replace values and never write into one (a
                # model contract test), so the caller's graphs stay as they were without copying
                # their features (a clone was most of this stage: ~1.5 ms a corpus graph).
                batch = Batch.from_data_list([self.transform(copy.copy(g))
                                              for g in graphs[start:start + self.batch_size]]).to(self.device)
            with clock.stage(DECODING):
                labels, marginals = self.model.decode(batch, marginals=True)
            out.extend(zip(labels, marginals))
        return out

    @torch.no_grad()
    def explain_graphs(self, graphs: Sequence[HeteroData]) -> list[Evidence]:
        """What the model read for each graph (:meth:`MNERModel.explain`)."""
        out = []
        for start in range(0, len(graphs), self.batch_size):
            batch = Batch.from_data_list([self.transform(copy.copy(g))  # as in tag_graphs
                                          for g in graphs[start:start + self.batch_size]]).to(self.device)
            out.extend(self.model.explain(batch))
        return out

    def predict(self, tweets: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
                image: str | os.PathLike | None = None,
                images: Sequence[str | os.PathLike | None] | None = None,
                progress: bool = False, explain: bool = False, *,
                words: Sequence[str] | Sequence[Sequence[str]] | None = None
                ) -> Prediction | list[Prediction]:
        """Tags one tweet or many.

        A flat list of strings is always several raw tweets
        (``predict(['RT @nba ...', 'Obama in Paris'])``); one pre-split tweet
        goes in ``words`` (``predict(words=['does', 'insulin', ...])``).

        Args:
            tweets: one raw text (split into words as the training data was:
                hashtags, mentions, URLs, punctuation), or a list of tweets,
                each a raw text or a list of words (pre-split).
            image: the photo of a single tweet.
            images: one photo (or :obj:`None`) per tweet of a list.
            progress: show a progress bar.
            explain: also say what the model read (:attr:`Prediction.evidence`):
                per word, its attention over regions, objects and aux words and
                the gate values; per entity, its strongest visual sources.
            words: instead of ``tweets``, pre-split input: one tweet's words
                (a list of strings), or a list of such lists.

        Returns:
            A :class:`Prediction` for one tweet (a raw text, or one list of
            ``words``), a list for a list.
        """
        if (tweets is None) == (words is None):
            raise ValueError("give 'tweets' (raw texts) or 'words' (pre-split), exactly one of them")
        if words is not None:
            if isinstance(words, str):
                raise ValueError("'words' takes a list of words, not one string; raw text goes in 'tweets'")
            if words and all(isinstance(w, str) for w in words):  # one tweet's words
                if images is not None:
                    raise ValueError("one tweet takes 'image', not 'images'")
                return self.predict([list(words)], images=[image], progress=progress, explain=explain)[0]
            if not all(_is_word_list(t) for t in words):
                raise ValueError("'words' takes one tweet's words (a list of strings) or a list of such "
                                 f'lists, got {words!r:.80}')
            tweets = [list(t) for t in words]
        if isinstance(tweets, str):
            if images is not None:
                raise ValueError("one tweet takes 'image', not 'images'")
            return self.predict([tweets], images=[image], progress=progress, explain=explain)[0]
        if image is not None:
            raise ValueError("a list of tweets takes 'images' (one per tweet), not 'image'")
        images = list(images) if images is not None else [None] * len(tweets)
        if len(images) != len(tweets):
            raise ValueError(f"'images' needs one entry per tweet: got {len(images)} for "
                             f'{len(tweets)} tweets')
        words = [tokenize_tweet(t, self.tokenizer_style) if isinstance(t, str) else list(t) for t in tweets]
        predictions = []
        chunk = self.batch_size * 8  # graphs are built in chunks: memory stays flat on long files
        with tqdm(total=len(words), unit='tweet', desc='tagging', disable=not progress) as bar, \
                profiling(self.model, self.profile) as clock:
            for start in range(0, len(words), chunk):
                part = images[start:start + chunk]
                with clock.stage(BUILD_GRAPHS):
                    graphs = self.graphs(words[start:start + chunk], part)
                evidence = [None] * len(graphs)
                if explain:  # the explain forward charged to itself, apart from the tagging one
                    with clock.stage(EXPLAIN, inclusive=True):
                        evidence = self.explain_graphs(graphs)
                tagged = self.tag_graphs(graphs)
                with clock.stage(RESULTS):
                    for g, img, (labels, probs), e in zip(graphs, part, tagged, evidence):
                        predictions.append(self._prediction(g, img, labels, probs, e))
                bar.update(len(graphs))
        return predictions

    def render(self, predictions: Prediction | Sequence[Prediction],
               titles: Sequence[str | None] | None = None, page: bool = False) -> RenderedHTML:
        """The entities of :meth:`predict`'s result drawn by spaCy's displaCy, each
        with its type and confidence: Jupyter shows the returned markup, and
        ``page=True`` gives a whole offline HTML page (see :mod:`graphmner.render`).

        Args:
            predictions: one :class:`Prediction` or a list.
            titles: a heading per prediction (e.g. its image id), or :obj:`None`.
            page: a whole HTML page instead of a fragment for a notebook.
        """
        return render(predictions, titles, page=page)

    def _prediction(self, g: HeteroData, image, labels: list[str], probs: list[float],
                    evidence: Evidence | None = None) -> Prediction:
        words = list(g.words)
        entities = [Entity(' '.join(words[s:e]), t, s, e, min(probs[s:e]))
                    for t, s, e in get_spans(labels, 'strict')]
        notes = []
        missing = bool(g[schema.IMAGE].missing.any())
        if image is not None and not self.reads_images:
            notes.append(f"'{self.model.name}' reads no image: tagged from the text")
        elif image is not None and missing:
            # The kind the extractor counted it under (graphmner.data.images.PROBLEMS), so that the
            # note and the log's count say one word for one cause.
            notes.append(f'image unusable ({image_problem(image)}): tagged from the text')
        elif image is None and self.reads_images:
            notes.append('no image: tagged from the text')
        if self.model.text_view is not None and not getattr(g, 'aux_words', None):
            notes.append('no image text (caption/tags) for this tweet: text-only view')
        if evidence is not None:
            evidence.entities = [evidence.top(e.start, e.end) for e in entities]
        return Prediction(words, labels, entities, None if image is None else str(image),
                          self.reads_images and image is not None and not missing, notes, evidence)
