"""Train and evaluate one method on one dataset.

    python experiments/run.py --model umgf                       # demo data, offline
    python experiments/run.py --model bert-crf --dataset twitter2017 \\
        --data-root ../shared/data --encoder ../shared/models/all-MiniLM-L6-v2 --epochs 3 --seed 1

Settings come from ``experiments/configs/<model>_<dataset>.yaml`` (the paper's
hyper-parameters), then from the flags, then from ``--set section.key=value``.
The run folder (``--out``) receives ``metrics.json``, ``best.pt`` (the best dev
checkpoint), ``last.pt`` (for ``--resume``), ``log.txt`` and ``training.png``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault('YOLO_OFFLINE', 'true')

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphmner import models  # noqa: E402
from graphmner.data import DATASETS  # noqa: E402
from graphmner.graph import GraphOptions, load_dataset, visual_width  # noqa: E402
from graphmner.metrics import format_scores  # noqa: E402
from graphmner.train import TrainConfig, Trainer  # noqa: E402
from graphmner.train.settings import SettingsError, apply_overrides, read_config, set_value  # noqa: E402

CONFIGS = ROOT / 'experiments' / 'configs'
#: The offline encoder of this project's machines, relative to the repository.
DEMO_ENCODER = ROOT.parent / 'shared' / 'models' / 'all-MiniLM-L6-v2'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True, choices=models.available())
    p.add_argument('--dataset', default='demo', choices=DATASETS)
    p.add_argument('--data-root', help='folder holding twitter2015/ and twitter2017/ (CoNLL splits)')
    p.add_argument('--image-root', help='folder of the tweet images (<image_id>.jpg); without it '
                   'every image counts as missing')
    p.add_argument('--captions', help='BLIP-2 caption file (<image_id>.jpg :<caption>) for aux nodes')
    p.add_argument('--vision-weights', help="ResNet weights: 'imagenet' (torch hub cache), a state-dict "
                   "file, or 'none' for random weights (data.vision_weights)")
    p.add_argument('--detector-weights', help='YOLO weights: a .pt file, or a .yaml for random weights '
                   '(data.detector_weights)')
    p.add_argument('--spacy-model', help='spaCy pipeline name or folder for noun phrases (data.spacy_model)')
    p.add_argument('--encoder', help='text encoder: hub name or local folder (default: the config '
                   f"file's; for the demo {DEMO_ENCODER.relative_to(ROOT.parent)} next to the repo)")
    p.add_argument('--epochs', type=int)
    p.add_argument('--seed', type=int)
    p.add_argument('--batch-size', type=int)
    p.add_argument('--out', help='run folder (default: runs/<model>-<dataset>-seed<seed>)')
    p.add_argument('--cache-dir', help='folder of the built-graph and feature caches (default: '
                   'graphs/cache, or $GRAPHMNER_CACHE)')
    p.add_argument('--config', help='YAML file to use instead of configs/<model>_<dataset>.yaml')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                   help='override one setting, e.g. --set model.dropout=0.5 (repeatable)')
    p.add_argument('--resume', action='store_true', help='continue from <out>/last.pt')
    p.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N'")
    return p.parse_args(argv)


def load_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config file, then the flags, then ``--set``; every value typed by
    its config dataclass (a mistake is a :class:`SettingsError`)."""
    path = Path(args.config) if args.config else CONFIGS / f'{args.model}_{args.dataset}.yaml'
    if not path.exists():
        raise SettingsError(f"no config '{path}': write one or pass --config")
    classes = {'model': models.model_class(args.model).config_class, 'train': TrainConfig,
               'data': GraphOptions}
    settings = read_config(path, classes)
    if args.encoder:
        settings['model']['encoder'] = args.encoder
    elif args.dataset == 'demo' and 'encoder' not in settings['model']:
        settings['model']['encoder'] = str(DEMO_ENCODER)
    for flag, name in ((args.epochs, 'epochs'), (args.seed, 'seed'), (args.batch_size, 'batch_size')):
        if flag is not None:
            settings['train'][name] = flag
    for flag, name in ((args.vision_weights, 'vision_weights'), (args.detector_weights, 'detector_weights'),
                       (args.spacy_model, 'spacy_model')):
        if flag is not None:
            set_value('data', GraphOptions, settings['data'], name, None if flag.lower() == 'none' else flag)
    apply_overrides(settings, args.set, classes)  # last, so it wins over the flags
    return settings


def setup_logging(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    handlers = [logging.StreamHandler(sys.stdout), logging.FileHandler(run_dir / 'log.txt')]
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(message)s',
                        datefmt='%H:%M:%S', handlers=handlers, force=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
    except SettingsError as error:
        print(f'run.py: error: {error}', file=sys.stderr)
        raise SystemExit(2) from None
    train_config = TrainConfig(**settings['train'])
    run_dir = Path(args.out or ROOT / 'runs' / f'{args.model}-{args.dataset}-seed{train_config.seed}')
    setup_logging(run_dir)
    log = logging.getLogger('graphmner.run')
    log.info('settings: %s', json.dumps(settings))

    data = {split: load_dataset(args.dataset, split, data_root=args.data_root, image_root=args.image_root,
                                captions=args.captions, **settings['data'],
                                **({'cache_dir': args.cache_dir} if args.cache_dir else {}))
            for split in ('train', 'dev', 'test')}
    model_fields = {f.name for f in dataclasses.fields(models.model_class(args.model).config_class)}
    width = visual_width(data['train'])
    if 'visual_dim' in model_fields and width is not None:
        # The model's visual input width is the data's (ResNet 2048, the weight-free backend's own).
        settings['model']['visual_dim'] = width
    torch.manual_seed(train_config.seed)  # the model's initial weights depend on it
    model = models.build(args.model, **settings['model']).to(args.device)
    transform = model.graph_transform()
    graphs = {split: [transform(g) for g in dataset] for split, dataset in data.items()}
    for split, dataset in data.items():
        report = dataset.report
        log.info('%s: %d tweets, %d without a usable image, %d with aux words', split, len(dataset),
                 report.get('images_missing', 0), report.get('tweets_with_aux', 0))

    trainer = Trainer(model, graphs['train'], graphs['dev'], train_config, run_dir, device=args.device)
    trainer.fit(resume=args.resume)
    dev = trainer.test(graphs['dev'], 'dev')
    test = trainer.test(graphs['test'])
    views = {}  # a model with several inference views (ITA) is also scored with each one forced
    if len(model.views) > 1:
        for view in model.views:
            with model.inference_view(view):
                views[view] = trainer.test(graphs['test'], f'test, {view} view')
    metrics = {
        'model': args.model, 'dataset': args.dataset, 'encoder': settings['model']['encoder'],
        'data_root': args.data_root, 'image_root': args.image_root, 'captions': args.captions,
        'epochs': train_config.epochs, 'seed': train_config.seed, 'dev': dev, 'test': test,
        'train_seconds': round(trainer.train_seconds, 2),
        'tweets_per_second': round(trainer.tweets_per_second, 2),
        'test_views': views,
        'images_missing': {split: d.report.get('images_missing', 0) for split, d in data.items()},
        'settings': settings, 'history': trainer.history,
        'finished': time.strftime('%Y-%m-%dT%H:%M:%S'),
    }
    (run_dir / 'metrics.json').write_text(json.dumps(metrics, indent=2, default=str))
    print(f'\n{args.model} on {args.dataset} (best dev epoch, {trainer.train_seconds:.0f} s training, '
          f'{trainer.tweets_per_second:.1f} tweets/s)')
    print('dev\n' + format_scores(dev))
    print('test\n' + format_scores(test))
    for view, scores in views.items():
        print(f"test, {view} view: F1 {100 * scores['f1']:.2f}")
    print(f'run folder: {run_dir}')
    return metrics


if __name__ == '__main__':
    main()
