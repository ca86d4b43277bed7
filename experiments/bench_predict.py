"""Prediction throughput of ``Tagger.predict`` against a bare encoder forward, side by side.

    python experiments/bench_predict.py --data-root ../shared/data --encoder ../shared/models/all-MiniLM-L6-v2
    python experiments/bench_predict.py --images /tmp/bench-corpus ...   # the visual methods, photos in

1,000 Twitter-2017 tweets (the test split, then the dev split), given as words
(the text path; the model reads no image, so no feature is computed). The
tagger does everything a user's call does: graph building, batching, the
forward pass, Viterbi decoding, CRF marginals for the confidences and the
result objects. The bare side is what a person would write by hand: the same
encoder (``AutoModel``), the same words tokenised outside the timed region, one
forward pass per batch under ``no_grad``. Rounds alternate between the two so
that load drifts hit both alike; the ratio is tweets/s over tweets/s (medians).

The cost of windows: the first tweets' words joined into one text of
``--long-words`` words (far past the encoder's 128 subwords, so it is read in
overlapping windows) against the same tweets tagged one by one, in words/s.

The cost of ``explain=True``: the demo's tweets with their photos (the demo's
graph options: scikit-image's samples, the cascade detector), tagged with and
without evidence by bert-crf and by ``--explain-model``, both built untrained
(the weights do not change the speed). The features are extracted once before
the timed rounds, so both sides build the same graphs from the cache.

With ``--images CORPUS`` (a folder ``experiments/bench_corpus.py --out`` wrote)
the tweets are the corpus's first ``--tweets``, each given with its photo, and
each visual method (``--model``, default umgf maf gmf ita, built untrained as
its paper has it; with ``--evidence`` UMGF, MAF and GMF also as ``NAME+aux``,
reading every aux source) tags them against the bare encoder forward on the
same words. Graphs are built from the corpus's
feature cache, warmed by one untimed pass, so the rounds time graph building
from cached features, not extraction. After the rounds one more call of each
method runs with the stage profile (:mod:`graphmner.train.profile`): graph
building, batching, the forward by module, decoding, Viterbi, marginals,
results, in seconds per batch and share of the call.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphmner.cli import Parser, quiet_third_parties  # noqa: E402

quiet_third_parties()  # before torch_geometric's import warns about torch.jit

from experiments.bench_train import timed_rounds  # noqa: E402
from graphmner import Tagger, models  # noqa: E402
from graphmner.data import read_conll, split_path  # noqa: E402
from graphmner.data.demo import DEMO_OPTIONS, demo_image_root, demo_split_path  # noqa: E402
from graphmner.graph import GraphOptions  # noqa: E402
from graphmner.graph.builder import backend_widths  # noqa: E402
from graphmner.graph.data_config import DataConfig  # noqa: E402
from graphmner.train.profile import ENCODER_STAGES, OTHER, StageClock  # noqa: E402

#: The methods that read the image, timed by ``--images`` unless ``--model`` names others.
VISUAL_METHODS = ('umgf', 'maf', 'gmf', 'ita')


def bare_round(encoder, words: list[list[str]], batch_size: int) -> float:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(encoder.name_or_path, add_pooling_layer=False).eval()
    batches = [encoder.tokenize(words[i:i + batch_size]) for i in range(0, len(words), batch_size)]
    start = time.perf_counter()
    with torch.no_grad():
        for enc in batches:
            hidden = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
            hidden.gather(1, enc.word_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    return len(words) / (time.perf_counter() - start)


def tagger_round(tagger: Tagger, words: list[list[str]]) -> float:
    start = time.perf_counter()
    predictions = tagger.predict(words)
    assert len(predictions) == len(words)
    return len(words) / (time.perf_counter() - start)


def words_round(tagger: Tagger, texts: list[list[str]]) -> float:
    start = time.perf_counter()
    tagger.predict(texts)
    return sum(map(len, texts)) / (time.perf_counter() - start)


def explain_round(tagger: Tagger, words: list[list[str]], images: list[Path], explain: bool) -> float:
    start = time.perf_counter()
    predictions = tagger.predict(words, images=images, explain=explain)
    assert all((p.evidence is not None) is explain for p in predictions)
    return len(words) / (time.perf_counter() - start)


def explain_cost(names: list[str], encoder: str, batch_size: int, rounds: int) -> None:
    tweets = [t for split in ('train', 'dev', 'test') for t in read_conll(demo_split_path(split))]
    root = demo_image_root()
    words = [t.words for t in tweets]
    images = [next(root.glob(f'{t.image_id}.*')) for t in tweets]
    options = GraphOptions(**DEMO_OPTIONS)
    widths = backend_widths(options).x
    with tempfile.TemporaryDirectory() as cache:
        for name in names:
            cls = models.model_class(name)
            fields = {f.name for f in dataclasses.fields(cls.config_class)}
            visual = {'visual_dim': widths[cls.visual_node_types[0]]} if 'visual_dim' in fields else {}
            torch.manual_seed(1)
            model = models.build(name, encoder=encoder, **visual)
            model.data_config = DataConfig(options=options, tokenizer='twitter2015')
            tagger = Tagger(model, cache_dir=cache, batch_size=batch_size)
            tagger.predict(words, images=images)  # extracts the features into the cache, untimed
            rates: dict[str, list[float]] = {'plain': [], 'explain=True': []}
            for _ in range(rounds):
                rates['plain'].append(explain_round(tagger, words, images, False))
                rates['explain=True'].append(explain_round(tagger, words, images, True))
            median = {k: statistics.median(v) for k, v in rates.items()}
            print(f"\n{name}: {len(words)} demo tweets with photos x {rounds} rounds: "
                  + ', '.join(f'{k} {v:.1f}' for k, v in median.items()) + ' tweets/s (median)')
            print(f"ratio explain=True / plain ({name}): {median['explain=True'] / median['plain']:.2f}x")


def corpus_tagger(name: str, encoder: str, corpus: str, dataset: str, data_root: str, cache: Path,
                  batch_size: int, evidence: bool = False) -> Tagger:
    """An untrained ``name`` as its paper has it (with ``evidence``: reading every aux source too),
    whose graphs are built as the corpus's: its graph options, the real photos' captions, the
    features from the corpus's cache."""
    from experiments.bench_corpus import BENCH_OPTIONS, corpus_model, default_captions

    torch.manual_seed(1)
    model = corpus_model(name, encoder, evidence)
    model.data_config = DataConfig(options=GraphOptions(**BENCH_OPTIONS),
                                   captions=str(default_captions(dataset, data_root)))
    # The tagger reads features from <cache_dir>/features: there, the corpus's own cache.
    if not (cache / 'features').exists():
        (cache / 'features').symlink_to(Path(corpus).resolve() / 'cache')
    return Tagger(model, cache_dir=cache, batch_size=batch_size)


def with_images(args) -> None:
    """Each visual method tagging corpus tweets with their photos against the bare encoder forward,
    then each method's stage profile of prediction."""
    from experiments.bench_corpus import corpus_builder, written_corpus

    methods = args.model or list(VISUAL_METHODS)
    written = written_corpus(args.images, 'bench_predict.py')
    tweets, _ = corpus_builder(args.images, data_root=args.data_root, progress=False, **written)
    tweets = tweets[:args.tweets]
    words = [t.words for t in tweets]
    images = [Path(args.images) / 'images' / f'{t.image_id}.jpg' for t in tweets]
    with tempfile.TemporaryDirectory() as cache:
        variants = [(name, False) for name in methods]
        if args.evidence:  # ITA's paper model reads its aux words already
            variants += [(name, True) for name in methods if name != 'ita']
        taggers = {name + ('+aux' if evidence else ''): corpus_tagger(
            name, args.encoder, args.images, written['dataset'], args.data_root, Path(cache),
            args.batch_size, evidence) for name, evidence in variants}
        for name, tagger in taggers.items():
            predictions = tagger.predict(words, images=images)  # the cache warm for every tweet, untimed
            if tagger.reads_images:  # ITA reads no photo, only its caption words (aux nodes)
                print(f'{name}: the photo reached the model for '
                      f'{sum(p.image_used for p in predictions)} of {len(predictions)} tweets')
        encoder = next(iter(taggers.values())).model.encoder
        contenders = {'bare encoder forward': lambda: bare_round(encoder, words, args.batch_size)}
        for name, tagger in taggers.items():
            contenders[f'Tagger.predict {name}'] = (
                lambda tagger=tagger: explain_round(tagger, words, images, False))
        median = timed_rounds(contenders, args.rounds)
        print(f'\n{len(words)} corpus tweets with their photos x {args.rounds} rounds, '
              f'batch {args.batch_size}, {torch.get_num_threads()} threads')
        for name, value in median.items():
            print(f'{name:<24} {value:8.1f} tweets/s (median)')
        for name in taggers:
            print(f"ratio Tagger.predict {name} / bare encoder forward: "
                  f"{median[f'Tagger.predict {name}'] / median['bare encoder forward']:.2f}x")
        batches = math.ceil(len(words) / args.batch_size)
        for name, tagger in taggers.items():
            tagger.profile = clock = StageClock()
            tagger.predict(words, images=images)
            tagger.profile = None
            print(f'\n{name}: stages of Tagger.predict (mean of {batches} batches)')
            print(clock.table(batches, unit='batch'))
            stage, seconds = clock.largest(besides=(*ENCODER_STAGES, OTHER))
            print(f'largest stage besides the encoder: {stage} ({seconds / batches:.4f} s/batch, '
                  f'{seconds / clock.total:.1%} of the call)')


def main() -> None:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--images', metavar='CORPUS',
                   help="the benchmark corpus's folder (experiments/bench_corpus.py --out): its tweets "
                        'tagged with their photos by each visual method')
    p.add_argument('--model', nargs='+', choices=VISUAL_METHODS,
                   help=f"with --images: the methods timed (default: {' '.join(VISUAL_METHODS)})")
    p.add_argument('--evidence', action='store_true',
                   help='with --images: also time UMGF, MAF and GMF reading every aux source '
                        '(caption, tag and OCR words: NAME+aux rows)')
    p.add_argument('--data-root', default=str(ROOT.parent / 'shared' / 'data'))
    p.add_argument('--encoder', default=str(ROOT.parent / 'shared' / 'models' / 'all-MiniLM-L6-v2'))
    p.add_argument('--tweets', type=int, default=1000,
                   help='tweets tagged (with --images: photos not in the cache yet are extracted first, '
                        'about 1 s each on one thread)')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--long-words', type=int, default=3000, help='words of the one long text (0: skip)')
    p.add_argument('--explain-model', default='umgf', choices=('umgf', 'maf'),
                   help='the visual model whose explain=True is timed beside bert-crf')
    p.add_argument('--explain-rounds', type=int, default=5,
                   help='rounds of the explain=True timing (0: skip)')
    args = p.parse_args()
    if args.images:
        with_images(args)
        return

    tweets = [t for split in ('test', 'dev')
              for t in read_conll(split_path('twitter2017', split, args.data_root))]
    words = [t.words for t in tweets[:args.tweets]]
    torch.manual_seed(1)
    # The weights do not change the speed: an untrained bert-crf is a trained one's size.
    tagger = Tagger(models.build('bert-crf', encoder=args.encoder), batch_size=args.batch_size)
    encoder = tagger.model.encoder
    median = timed_rounds({'bare encoder forward': lambda: bare_round(encoder, words, args.batch_size),
                           'Tagger.predict': lambda: tagger_round(tagger, words)}, args.rounds)
    print(f'\n{len(words)} tweets x {args.rounds} rounds, batch {args.batch_size}, '
          f'{torch.get_num_threads()} threads')
    for name, value in median.items():
        print(f'{name:<24} {value:8.1f} tweets/s (median)')
    print(f"ratio Tagger.predict / bare encoder forward: "
          f"{median['Tagger.predict'] / median['bare encoder forward']:.2f}x")
    if args.long_words:
        short = []
        while sum(map(len, short)) < args.long_words and len(short) < len(tweets):
            short.append(tweets[len(short)].words)
        long = [[w for t in short for w in t]]
        enc = tagger.model.encoder
        rows = enc.tokenize(long).attention_mask
        windows, read = rows.shape[0], int(rows.sum()) - 2 * rows.shape[0]  # without [CLS]/[SEP]
        text = int(enc.tokenize(short).attention_mask.sum()) - 2 * len(short)
        rates = {'tweets one by one': [], 'one long text': []}
        for _ in range(args.rounds):
            rates['tweets one by one'].append(words_round(tagger, short))
            rates['one long text'].append(words_round(tagger, long))
        median = {name: statistics.median(values) for name, values in rates.items()}
        print(f'\n{len(long[0])} words: {len(short)} tweets, or one text in {windows} windows '
              f'(max_length {enc.max_length}, overlap {enc.window_overlap}); the windows read '
              f'{read} subwords for its {text} ({read / text:.2f}x)')
        for name, value in median.items():
            print(f'{name:<24} {value:8.1f} words/s (median)')
        print(f"ratio one long text / tweets one by one: "
              f"{median['one long text'] / median['tweets one by one']:.2f}x")
    if args.explain_rounds:
        explain_cost(['bert-crf', args.explain_model], args.encoder, args.batch_size, args.explain_rounds)


if __name__ == '__main__':
    main()
