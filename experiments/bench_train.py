"""Training throughput of graphmner's trainer against a bare loop, side by side.

    python experiments/bench_train.py --data-root ../shared/data --encoder ../shared/models/all-MiniLM-L6-v2
    python experiments/bench_train.py --model umgf ...   # also UMGF against bert-crf
    python experiments/bench_train.py --images /tmp/bench-corpus ...   # the visual methods, image in

The bare loop is what a person would write by hand: the same encoder
(``AutoModel``), the same batches in the same order, already tokenised outside
the timed region, first-subword states -> linear -> cross-entropy -> AdamW. It
runs twice: with PyTorch's default AdamW, and with the fused AdamW the trainer
uses (the stricter floor, which the ratio is taken against). The trainer runs
the full bert-crf (CRF NLL, collation of graph batches, tokenisation,
scheduler, clipping). Rounds alternate between the contenders so
that machine load drifts hit both alike; the ratio is tweets/s over tweets/s.

With ``--images CORPUS`` (a folder ``experiments/bench_corpus.py --out`` wrote)
the tweets are the corpus's, each with its photo, and every visual node is in
their graphs (regions, pyramid, objects, caption / tag / OCR aux words; the
features extracted once into the corpus's cache, before any round). Each visual
method (``--model``, default umgf maf gmf ita) is built as its paper has it
(``bench_corpus.corpus_model``: the package defaults at the backend's visual
widths; ITA reads its caption), and with ``--evidence`` UMGF, MAF and GMF also
as ``NAME+aux``, reading every aux source. They run against bert-crf's trainer
on the same tweets and two bare loops with fused AdamW: the one above, and one
that also reads each tweet with its caption in a second encoder pass (the floor
of a method that runs the encoder twice: ITA's two views, GMF's prefix-free
pass for its CM loss). After the timed rounds one more epoch of each trainer
runs with the stage profile (:mod:`graphmner.train.profile`), printed as seconds
per step and share of the step, with the largest stage besides the encoder's
own named.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # imported after quiet_third_parties() at run time, by graphmner
    from torch_geometric.data import Batch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphmner.cli import Parser, fail, quiet_third_parties  # noqa: E402

quiet_third_parties()  # before torch_geometric's import warns about torch.jit

from graphmner import models  # noqa: E402
from graphmner.graph import load_dataset, visual_width  # noqa: E402
from graphmner.models.base import MNERModel  # noqa: E402
from graphmner.train import TrainConfig, Trainer  # noqa: E402
from graphmner.train.profile import ENCODER_STAGES, OTHER, StageClock  # noqa: E402
from graphmner.train.trainer import shuffled_loader  # noqa: E402

#: The methods that read the image, timed by ``--images`` unless ``--model`` names others.
VISUAL_METHODS = ('umgf', 'maf', 'gmf', 'ita')


def text_model(name: str, encoder: str, graphs) -> MNERModel:
    """``name`` as the text-only rounds build it (``visual_dim`` of the graphs' image nodes, if any)."""
    fields = {f.name for f in dataclasses.fields(models.model_class(name).config_class)}
    visual = {'visual_dim': visual_width(graphs)} if 'visual_dim' in fields and visual_width(graphs) else {}
    return models.build(name, encoder=encoder, **visual)


def trainer_round(build: Callable[[], MNERModel], graphs, config: TrainConfig,
                  profile: StageClock | None = None) -> float:
    """Tweets/s of one epoch of the trainer on the model ``build`` makes (``profile``: its stages)."""
    torch.manual_seed(config.seed)
    return train_one_epoch(build(), graphs, config, profile).tweets_per_second


def train_one_epoch(model: MNERModel, graphs, config: TrainConfig, profile: StageClock | None = None
                    ) -> Trainer:
    """``model`` trained by graphmner's :class:`Trainer` for one epoch over ``graphs`` (its graph
    transform applied to copies), in a throwaway run folder."""
    transform = model.graph_transform()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, [transform(g.clone()) for g in graphs], [], config, run_dir, profile=profile)
        trainer.train_epoch(0)
    return trainer


def bare_round(encoder: str, graphs, config: TrainConfig, fused: bool,
               second_view: Callable[[Batch], list[list[str]]] | None = None) -> float:
    """Tweets/s of the bare loop; with ``second_view`` (a batch -> each tweet's aux words) every step
    also reads ``[CLS] words [SEP] aux [SEP]`` through the same encoder and adds its loss: the floor of
    a method with two encoder passes (ITA's two views, GMF's prefix-free pass)."""
    from transformers import AutoModel

    torch.manual_seed(config.seed)
    helper = models.build('bert-crf', encoder=encoder).encoder  # tokeniser only
    model = AutoModel.from_pretrained(encoder, add_pooling_layer=False)
    head = torch.nn.Linear(model.config.hidden_size, 9)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=config.encoder_lr,
                                  fused=fused)
    batches = []  # the same batches as the trainer's first epoch, tokenised up front
    for batch in shuffled_loader(graphs, config.batch_size, config.seed, epoch=0):
        views = [helper.tokenize(batch.words)]
        if second_view is not None:
            views.append(helper.tokenize(batch.words, second_view(batch)))
        batches.append((views, batch['word'].y))
    model.train()
    seen, start = 0, time.perf_counter()
    for views, y in batches:
        loss = 0
        for enc in views:
            hidden = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                           token_type_ids=enc.token_type_ids).last_hidden_state
            states = hidden.gather(1, enc.word_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
            loss = loss + torch.nn.functional.cross_entropy(head(states[enc.word_mask]), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += views[0].word_mask.shape[0]
    return seen / (time.perf_counter() - start)


def timed_rounds(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median tweets/s of each contender over ``rounds`` rounds, the contenders alternating in each."""
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        for name, run in contenders.items():
            rates[name].append(run())
            print(f'round {r + 1}  {name:<18} {rates[name][-1]:7.2f} tweets/s', flush=True)
    return {name: statistics.median(values) for name, values in rates.items()}


def print_medians(median: dict[str, float], tweets: int, args) -> None:
    print(f'\n{tweets} tweets x {args.rounds} rounds, batch {args.batch_size}, '
          f'{torch.get_num_threads()} threads')
    for name, value in median.items():
        print(f'{name:<20} {value:7.2f} tweets/s (median)')


def text_only(args) -> None:
    """The trainer's bert-crf (and ``--model``) against both bare loops, on Twitter without photos."""
    graphs = list(load_dataset(args.dataset, 'train', data_root=args.data_root))
    graphs = graphs[:args.batches * args.batch_size]
    config = TrainConfig(epochs=1, batch_size=args.batch_size, seed=1)
    others = [name for name in args.model or () if name != 'bert-crf']
    contenders = {'bare loop': lambda: bare_round(args.encoder, graphs, config, fused=False),
                  'bare loop, fused': lambda: bare_round(args.encoder, graphs, config, fused=True)}
    for name in ('bert-crf', *others):
        contenders[f'trainer {name}'] = (lambda name=name: trainer_round(
            lambda: text_model(name, args.encoder, graphs), graphs, config))
    median = timed_rounds(contenders, args.rounds)
    print_medians(median, len(graphs), args)
    print(f"ratio trainer bert-crf / bare loop with fused AdamW: "
          f"{median['trainer bert-crf'] / median['bare loop, fused']:.2f}x")
    print(f"ratio trainer bert-crf / bare loop with default AdamW: "
          f"{median['trainer bert-crf'] / median['bare loop']:.2f}x")
    for name in others:
        print(f"ratio trainer {name} / trainer bert-crf: "
              f"{median[f'trainer {name}'] / median['trainer bert-crf']:.2f}x")


def print_profile(name: str, clock: StageClock, steps: int) -> None:
    """``name``'s stage table, and its largest stage besides the encoder's own."""
    print(f'\n{name}: stages of a training step (mean of {steps} steps)')
    print(clock.table(steps))
    stage, seconds = clock.largest(besides=(*ENCODER_STAGES, OTHER))
    print(f'largest stage besides the encoder: {stage} ({seconds / steps:.4f} s/step, '
          f'{seconds / clock.total:.1%} of the step)')


def with_images(args) -> None:
    """Each visual method with every visual node of its paper in (and with ``--evidence`` every aux
    source too), against bert-crf and the bare loops on the same corpus tweets; then each trainer's
    stage profile."""
    from experiments.bench_corpus import corpus_graphs, corpus_model, written_corpus

    methods = args.model or list(VISUAL_METHODS)
    text_methods = [name for name in methods if name not in VISUAL_METHODS]
    if text_methods:
        fail('bench_train.py', f"--images times the methods that read the image "
                               f"({' '.join(VISUAL_METHODS)}); {', '.join(text_methods)} reads none "
                               "(bert-crf is always the reference)")
    written = written_corpus(args.images, 'bench_train.py')
    graphs = corpus_graphs(args.images, args.batches * args.batch_size, data_root=args.data_root,
                           progress=False, **written)
    config = TrainConfig(epochs=1, batch_size=args.batch_size, seed=1)
    builds = {'bert-crf': lambda: models.build('bert-crf', encoder=args.encoder)}
    for name in methods:
        builds[name] = lambda name=name: corpus_model(name, args.encoder)
        if args.evidence and name != 'ita':  # ITA's paper model reads its aux words already
            builds[f'{name}+aux'] = lambda name=name: corpus_model(name, args.encoder, evidence=True)
    captions = models.build('ita', encoder=args.encoder).aux_words_of  # each tweet's caption words
    contenders = {'bare loop, fused': lambda: bare_round(args.encoder, graphs, config, fused=True),
                  'bare loop, 2 passes': lambda: bare_round(args.encoder, graphs, config, fused=True,
                                                            second_view=captions)}
    for name, build in builds.items():
        contenders[f'trainer {name}'] = lambda build=build: trainer_round(build, graphs, config)
    median = timed_rounds(contenders, args.rounds)
    print_medians(median, len(graphs), args)
    print(f'every tweet with its photo (corpus {args.images}): {len(graphs)} graphs')
    print(f"ratio trainer bert-crf / bare loop with fused AdamW: "
          f"{median['trainer bert-crf'] / median['bare loop, fused']:.2f}x")
    print(f"ratio bare loop with a second pass (tweet + caption) / bare loop: "
          f"{median['bare loop, 2 passes'] / median['bare loop, fused']:.2f}x (the floor of two encoder "
          f"passes: ITA's views, GMF's prefix-free pass)")
    for name in builds:
        if name != 'bert-crf':
            print(f"ratio trainer {name} / trainer bert-crf: "
                  f"{median[f'trainer {name}'] / median['trainer bert-crf']:.2f}x")
    steps = math.ceil(len(graphs) / args.batch_size)
    for name, build in builds.items():
        clock = StageClock()
        trainer_round(build, graphs, config, profile=clock)
        print_profile(name, clock, steps)


def main() -> None:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', nargs='+', choices=models.available(),
                   help='methods timed against bert-crf (default: none; with --images: '
                        f"{' '.join(VISUAL_METHODS)})")
    p.add_argument('--images', metavar='CORPUS',
                   help="the benchmark corpus's folder (experiments/bench_corpus.py --out): every tweet "
                        'with its photo, every visual node in')
    p.add_argument('--evidence', action='store_true',
                   help='with --images: also time UMGF, MAF and GMF reading every aux source '
                        '(caption, tag and OCR words: NAME+aux rows)')
    p.add_argument('--dataset', default='twitter2017', help='the text-only rounds\' tweets')
    p.add_argument('--data-root', default=str(ROOT.parent / 'shared' / 'data'))
    p.add_argument('--encoder', default=str(ROOT.parent / 'shared' / 'models' / 'all-MiniLM-L6-v2'))
    p.add_argument('--batches', type=int, default=20, help='batches per round')
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--rounds', type=int, default=3)
    args = p.parse_args()
    if args.images:
        with_images(args)
    else:
        text_only(args)


if __name__ == '__main__':
    main()
