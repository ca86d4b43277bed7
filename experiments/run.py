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
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault('YOLO_OFFLINE', 'true')

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphmner import models  # noqa: E402
from graphmner.data import load_dataset  # noqa: E402
from graphmner.data.datasets import DATASETS  # noqa: E402
from graphmner.graph.transforms import KeepRelations  # noqa: E402
from graphmner.metrics import format_scores  # noqa: E402
from graphmner.train import TrainConfig, Trainer  # noqa: E402

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
    p.add_argument('--config', help='YAML file to use instead of configs/<model>_<dataset>.yaml')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                   help='override one setting, e.g. --set model.dropout=0.5 (repeatable)')
    p.add_argument('--resume', action='store_true', help='continue from <out>/last.pt')
    p.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N'")
    return p.parse_args(argv)


def load_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    path = Path(args.config) if args.config else CONFIGS / f'{args.model}_{args.dataset}.yaml'
    if not path.exists():
        raise SystemExit(f"No config '{path}': write one or pass --config")
    settings = yaml.safe_load(path.read_text()) or {}
    settings = {section: dict(settings.get(section) or {}) for section in ('model', 'train', 'data')}
    for item in args.set:
        key, sep, value = item.partition('=')
        section, dot, name = key.partition('.')
        if not sep or not dot or section not in settings:
            raise SystemExit(f"--set takes SECTION.KEY=VALUE with SECTION in model/train/data, got '{item}'")
        settings[section][name] = yaml.safe_load(value)
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
            settings['data'][name] = None if flag.lower() == 'none' else flag
    return settings


def setup_logging(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    handlers = [logging.StreamHandler(sys.stdout), logging.FileHandler(run_dir / 'log.txt')]
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(message)s',
                        datefmt='%H:%M:%S', handlers=handlers, force=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    settings = load_settings(args)
    train_config = TrainConfig(**settings['train'])
    run_dir = Path(args.out or ROOT / 'runs' / f'{args.model}-{args.dataset}-seed{train_config.seed}')
    setup_logging(run_dir)
    log = logging.getLogger('graphmner.run')
    log.info('settings: %s', json.dumps(settings))

    torch.manual_seed(train_config.seed)  # the model's initial weights depend on it
    model = models.build(args.model, **settings['model']).to(args.device)
    keep = KeepRelations(model.relations)
    data = {split: load_dataset(args.dataset, split, data_root=args.data_root, image_root=args.image_root,
                                captions=args.captions, **settings['data'])
            for split in ('train', 'dev', 'test')}
    graphs = {split: [keep(g) for g in dataset] for split, dataset in data.items()}
    for split, dataset in data.items():
        report = dataset.report
        log.info('%s: %d tweets, %d without a usable image, %d with aux words', split, len(dataset),
                 report.get('images_missing', 0), report.get('tweets_with_aux', 0))

    trainer = Trainer(model, graphs['train'], graphs['dev'], train_config, run_dir, device=args.device)
    trainer.fit(resume=args.resume)
    dev = trainer.test(graphs['dev'], 'dev')
    test = trainer.test(graphs['test'])
    views = {}  # a multi-view model (ITA) is also scored with each view forced
    for view in getattr(model, 'views', ()):
        with model.inference(view):
            views[view] = trainer.test(graphs['test'], f'test, {view} view')
    metrics = {
        'model': args.model, 'dataset': args.dataset, 'encoder': settings['model']['encoder'],
        'epochs': train_config.epochs, 'seed': train_config.seed, 'dev': dev, 'test': test,
        'train_seconds': round(trainer.train_seconds, 2),
        'tweets_per_second': round(trainer.tweets_per_second, 2),
        'test_views': views,
        'images_missing': {split: d.report.get('images_missing', 0) for split, d in data.items()},
        'settings': settings, 'history': trainer.history,
        'finished': time.strftime('%Y-%m-%dT%H:%M:%S'),
    }
    (run_dir / 'metrics.json').write_text(json.dumps(metrics, indent=2))
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
