"""Train and evaluate one method on one dataset (``experiments/run.py`` is the same command).

Examples:
    graphmner train --model umgf                                   # demo data, offline
    graphmner train --model bert-crf --dataset twitter2017 --data-root ../shared/data \\
        --encoder ../shared/models/all-MiniLM-L6-v2 --epochs 3 --seed 1
    graphmner train --model umgf --dataset my_corpus/ --encoder ../shared/models/all-MiniLM-L6-v2
                 (a folder with train.txt, valid.txt, test.txt in the IMGID: CoNLL format, any entity types)

Settings come from the package's configs, graphmner/configs/<model>_<dataset>.yaml (the papers'
hyper-parameters; <model>_twitter2017.yaml for a dataset folder), then from the flags, then from
--set section.key=value, each typed by its config (--set train.head_lr=1e-3).
The run folder (--out) receives metrics.json, test_predictions.txt (the best checkpoint's test
labels in CoNLL, for significance tests), best.pt (the best dev checkpoint, which
`graphmner predict` takes), last.pt (for --resume), log.txt and training.png.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import (
    MODEL_NAMES,
    Parser,
    offline_environment,
    quiet_third_parties,
    run_guarded,
)

NAMED_DATASETS = ('demo', 'twitter2015', 'twitter2017')
#: Shown in --help (the experiment API's DEMO_ENCODER; kept here so that --help imports no torch).
DEMO_ENCODER = '../shared/models/all-MiniLM-L6-v2'


def add_arguments(p: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """The command's flags on ``p``, but those in ``exclude`` (names without dashes: a script
    training several runs, experiments/compare.py, sets ``model`` and ``out`` itself)."""
    def add(flag: str, **kwargs: Any) -> None:
        if flag.removeprefix('--') not in exclude:
            p.add_argument(flag, **kwargs)

    add('--model', required=True, choices=MODEL_NAMES, help='the method to train')
    add('--dataset', default='demo', metavar='NAME_OR_FOLDER',
        help=f"{', '.join(NAMED_DATASETS)} (default: demo), or a folder holding train.txt, "
        'valid.txt, test.txt (e.g. --dataset data/my_corpus)')
    add('--data-root', help='folder holding twitter2015/ and twitter2017/ '
        '(e.g. --data-root ../shared/data)')
    add('--image-root', help='folder of the tweet images (<image_id>.jpg); without it '
        'every image counts as missing (e.g. --image-root data/twitter2017_images)')
    add('--captions', help='BLIP-2 caption file (<image_id>.jpg :<caption>) for aux nodes '
        '(e.g. --captions ../shared/data/captions/blip2_twitter2017.txt)')
    add('--vision-weights', help="ResNet weights: 'imagenet' (torch hub cache), a state-dict "
        "file, or 'none' for random weights (data.vision_weights; "
        'e.g. --vision-weights resnet152.pth)')
    add('--detector-weights', help="YOLO weights (a .pt file, a .yaml for random weights), the Haar "
        "cascades' folder ('opencv': the OpenCV wheel's; with --set data.detector_arch=cascade, the demo's), "
        "or 'none' for no detector (data.detector_weights; e.g. --detector-weights yolov8n.pt)")
    add('--spacy-model', help='spaCy pipeline name or folder for noun phrases (data.spacy_model; '
        'e.g. --spacy-model ../shared/models/en_core_web_sm-3.8.0)')
    add('--encoder', help='text encoder: hub name or local folder (default: the config '
        f"file's; for the demo {DEMO_ENCODER} if it exists; e.g. --encoder bert-base-uncased)")
    add('--epochs', type=int, help='training epochs, at least 1 (e.g. --epochs 3)')
    add('--seed', type=int, help='seed of weights, batches and dropout (e.g. --seed 1)')
    add('--batch-size', type=int, help='training batch size, at least 1: the global batch, '
        'shared out over the processes of a torchrun (e.g. --batch-size 16)')
    add('--precision', choices=('fp32', 'bf16', 'fp16'), help='training forward in float32 '
        "(default), or bfloat16 / float16 autocast (fp16 needs CUDA; train.precision)")
    add('--out', help='run folder (default: runs/<model>-<dataset>-seed<seed> under the working '
        'directory)')
    add('--cache-dir', help='folder of the built-graph and feature caches (default: '
        'graphs/cache, or $GRAPHMNER_CACHE)')
    add('--graphs-on-disk', action='store_true', help='build each split into a graph file in the '
        'cache and read the graphs from disk one at a time (memory flat in the corpus size), '
        'instead of holding each split in memory')
    add('--config', help="YAML file to use instead of the package's "
        'configs/<model>_<dataset>.yaml')
    add('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
        help='override one setting, typed by its config (repeatable; e.g. --set model.dropout=0.5 '
        '--set train.head_lr=1e-3)')
    add('--resume', action='store_true', help='continue from <out>/last.pt')
    add('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N' (under torchrun 'cuda': each "
        'process takes the GPU of its LOCAL_RANK)')
    add('--verbose', action='store_true', help="show third-party libraries' warnings")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = Parser(prog='run.py', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p.parse_args(argv)


def spec_from_args(args: argparse.Namespace):
    """The run spec of the command's flags: the config file, then the flags, then ``--set``, each
    value typed by its config (:func:`graphmner.train.experiment.load_spec`)."""
    from ..train.experiment import load_spec

    values: dict[str, dict] = {'model': {}, 'train': {}, 'data': {}}
    if args.encoder:
        values['model']['encoder'] = args.encoder
    for flag, name in ((args.epochs, 'epochs'), (args.seed, 'seed'), (args.batch_size, 'batch_size'),
                       (args.precision, 'precision')):
        if flag is not None:
            values['train'][name] = flag
    for flag, name in ((args.vision_weights, 'vision_weights'), (args.detector_weights, 'detector_weights'),
                       (args.spacy_model, 'spacy_model')):
        if flag is not None:
            values['data'][name] = None if flag.lower() == 'none' else flag
    return load_spec(args.model, args.dataset, args.config, args.set, values, data_root=args.data_root,
                     image_root=args.image_root, captions=args.captions,
                     out=Path(args.out) if args.out else None, device=args.device, cache_dir=args.cache_dir,
                     graphs_on_disk=args.graphs_on_disk, resume=args.resume)


def run(args: argparse.Namespace) -> dict[str, Any]:
    return run_guarded('graphmner train', lambda: train(args))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``experiments/run.py``: the same command under its historical name."""
    offline_environment()
    args = parse_args(argv)
    quiet_third_parties(args.verbose)
    return run_guarded('run.py', lambda: train(args))


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Trains the flags' run spec (validated first) and prints its scores; returns the metrics."""
    from ..train.experiment import run as run_experiment

    result = run_experiment(spec_from_args(args))
    if result.metrics:
        print(result.summary())
    return result.metrics
