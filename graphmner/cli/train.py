"""Train and evaluate one method on one dataset (``experiments/run.py`` is the same command).

Examples:
    graphmner train --model umgf                                   # demo data, offline
    graphmner train --model bert-crf --dataset twitter2017 --data-root ../shared/data \\
        --encoder ../shared/models/all-MiniLM-L6-v2 --epochs 3 --seed 1
    graphmner train --model umgf --dataset my_corpus/ --encoder ../shared/models/all-MiniLM-L6-v2
                 (a folder with train.txt, valid.txt, test.txt in the IMGID: CoNLL format, any entity types)

Settings come from experiments/configs/<model>_<dataset>.yaml (the papers' hyper-parameters;
<model>_twitter2017.yaml for a dataset folder), then from the flags, then from
--set section.key=value, each typed by its config (--set train.head_lr=1e-3).
The run folder (--out) receives metrics.json, test_predictions.txt (the best checkpoint's test
labels in CoNLL, for significance tests), best.pt (the best dev checkpoint, which
`graphmner predict` takes), last.pt (for --resume), log.txt and training.png.
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

from . import (
    MODEL_NAMES,
    REPOSITORY,
    Parser,
    UsageError,
    offline_environment,
    quiet_third_parties,
    run_guarded,
)

CONFIGS = REPOSITORY / 'experiments' / 'configs'
#: The offline encoder of this project's machines, beside the repository.
DEMO_ENCODER = REPOSITORY.parent / 'shared' / 'models' / 'all-MiniLM-L6-v2'
NAMED_DATASETS = ('demo', 'twitter2015', 'twitter2017')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--model', required=True, choices=MODEL_NAMES, help='the method to train')
    p.add_argument('--dataset', default='demo', metavar='NAME_OR_FOLDER',
                   help=f"{', '.join(NAMED_DATASETS)} (default: demo), or a folder holding train.txt, "
                   'valid.txt, test.txt (e.g. --dataset data/my_corpus)')
    p.add_argument('--data-root', help='folder holding twitter2015/ and twitter2017/ '
                   '(e.g. --data-root ../shared/data)')
    p.add_argument('--image-root', help='folder of the tweet images (<image_id>.jpg); without it '
                   'every image counts as missing (e.g. --image-root data/twitter2017_images)')
    p.add_argument('--captions', help='BLIP-2 caption file (<image_id>.jpg :<caption>) for aux nodes '
                   '(e.g. --captions ../shared/data/captions/blip2_twitter2017.txt)')
    p.add_argument('--vision-weights', help="ResNet weights: 'imagenet' (torch hub cache), a state-dict "
                   "file, or 'none' for random weights (data.vision_weights; "
                   'e.g. --vision-weights resnet152.pth)')
    p.add_argument('--detector-weights', help="YOLO weights: a .pt file, a .yaml for random weights, or "
                   "'none' for no detector (data.detector_weights; e.g. --detector-weights yolov8n.pt)")
    p.add_argument('--spacy-model', help='spaCy pipeline name or folder for noun phrases (data.spacy_model; '
                   'e.g. --spacy-model ../shared/models/en_core_web_sm-3.8.0)')
    p.add_argument('--encoder', help='text encoder: hub name or local folder (default: the config '
                   f"file's; for the demo {DEMO_ENCODER} if it exists; e.g. --encoder bert-base-uncased)")
    p.add_argument('--epochs', type=int, help='training epochs, at least 1 (e.g. --epochs 3)')
    p.add_argument('--seed', type=int, help='seed of weights, batches and dropout (e.g. --seed 1)')
    p.add_argument('--batch-size', type=int, help='training batch size, at least 1: the global batch, '
                   'shared out over the processes of a torchrun (e.g. --batch-size 16)')
    p.add_argument('--precision', choices=('fp32', 'bf16', 'fp16'), help='training forward in float32 '
                   "(default), or bfloat16 / float16 autocast (fp16 needs CUDA; train.precision)")
    p.add_argument('--out', help='run folder (default: runs/<model>-<dataset>-seed<seed>)')
    p.add_argument('--cache-dir', help='folder of the built-graph and feature caches (default: '
                   'graphs/cache, or $GRAPHMNER_CACHE)')
    p.add_argument('--graphs-on-disk', action='store_true', help='build each split into a graph file in the '
                   'cache and read the graphs from disk one at a time (memory flat in the corpus size), '
                   'instead of holding each split in memory')
    p.add_argument('--config', help='YAML file to use instead of configs/<model>_<dataset>.yaml')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                   help='override one setting, typed by its config (repeatable; e.g. --set model.dropout=0.5 '
                   '--set train.head_lr=1e-3)')
    p.add_argument('--resume', action='store_true', help='continue from <out>/last.pt')
    p.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N' (under torchrun 'cuda': each "
                   'process takes the GPU of its LOCAL_RANK)')
    p.add_argument('--verbose', action='store_true', help="show third-party libraries' warnings")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = Parser(prog='run.py', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p.parse_args(argv)


def dataset_name(args: argparse.Namespace) -> str:
    """The dataset's short name (a folder's own name) for paths and configs."""
    return args.dataset if args.dataset in NAMED_DATASETS else Path(args.dataset).name


def config_path(args: argparse.Namespace) -> Path:
    if args.config:
        return Path(args.config)
    name = args.dataset if args.dataset in NAMED_DATASETS else 'twitter2017'
    return CONFIGS / f'{args.model}_{name}.yaml'


def load_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config file, then the flags, then ``--set``; every value typed by
    its config dataclass (a mistake is a :class:`SettingsError`)."""
    from ..graph.options import GraphOptions
    from ..models import model_class
    from ..train import TrainConfig
    from ..train.settings import SettingsError, apply_overrides, read_config, set_value

    path = config_path(args)
    if not path.exists():
        raise SettingsError(f"no config '{path}': write one or pass --config")
    classes = {'model': model_class(args.model).config_class, 'train': TrainConfig, 'data': GraphOptions}
    settings = read_config(path, classes)
    if args.encoder:
        settings['model']['encoder'] = args.encoder
    elif args.dataset == 'demo' and 'encoder' not in settings['model']:
        settings['model']['encoder'] = str(DEMO_ENCODER)
    for flag, name in ((args.epochs, 'epochs'), (args.seed, 'seed'), (args.batch_size, 'batch_size'),
                       (args.precision, 'precision')):
        if flag is not None:
            settings['train'][name] = flag
    for flag, name in ((args.vision_weights, 'vision_weights'), (args.detector_weights, 'detector_weights'),
                       (args.spacy_model, 'spacy_model')):
        if flag is not None:
            set_value('data', GraphOptions, settings['data'], name, None if flag.lower() == 'none' else flag)
    apply_overrides(settings, args.set, classes)  # last, so it wins over the flags
    return settings


def check_encoder(name: str) -> None:
    """A missing folder or, offline, an uncached hub name is a user mistake, found
    before anything heavy loads (no minute of hub retries)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise UsageError(f"--encoder '{name}' is a file; give a model folder or a hub name")
    # a path, not a hub name such as 'bert-base-uncased' or 'org/name'
    if name.startswith(('.', '/', '~')) or name.count('/') > 1:
        raise UsageError(f"--encoder '{name}': the folder does not exist")
    if os.environ.get('HF_HUB_OFFLINE') == '1':
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, 'config.json'), str):
            raise UsageError(f"--encoder '{name}' is not in the local Hugging Face cache and the hub is off "
                             '(HF_HUB_OFFLINE=1): give a local model folder with --encoder PATH')


def check_inputs(args: argparse.Namespace, settings: dict[str, dict[str, Any]]):
    """Every check that needs no model or data loaded: the typed configs, the
    data files, the encoder. Returns the train config."""
    from ..data import split_path
    from ..models import model_class
    from ..train import TrainConfig
    from ..train.distributed import per_rank_batch
    from ..train.trainer import check_precision

    try:
        train_config = TrainConfig(**settings['train'])
        per_rank_batch(train_config.batch_size, int(os.environ.get('WORLD_SIZE', '1')))  # set by torchrun
        check_precision(train_config.precision, args.device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        model_class(args.model).config_class(**settings['model'])
    except ValueError as error:
        raise UsageError(str(error)) from None
    for split in ('train', 'dev', 'test'):
        try:
            split_path(args.dataset, split, args.data_root)
        except (ValueError, FileNotFoundError) as error:
            raise UsageError(str(error)) from None
    for flag, value in (('--image-root', args.image_root), ('--captions', args.captions)):
        if value is not None and not Path(value).exists():
            raise UsageError(f"{flag} '{value}' does not exist")
    check_encoder(settings['model']['encoder'])
    return train_config


def setup_logging(run_dir: Path, rank: int = 0) -> None:
    """Rank 0 logs to stdout and ``log.txt``; the other ranks of a torchrun
    only their warnings and errors, to stdout, marked with their rank."""
    if rank:
        logging.basicConfig(level=logging.WARNING, format=f'%(asctime)s [rank {rank}] %(name)s %(message)s',
                            datefmt='%H:%M:%S', handlers=[logging.StreamHandler(sys.stdout)], force=True)
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handlers = [logging.StreamHandler(sys.stdout), logging.FileHandler(run_dir / 'log.txt')]
    except OSError as error:
        raise UsageError(f"cannot write the run folder '{run_dir}' (--out): {error.strerror}") from None
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(message)s',
                        datefmt='%H:%M:%S', handlers=handlers, force=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    return run_guarded('graphmner train', lambda: train(args))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``experiments/run.py``: the same command under its historical name."""
    offline_environment()
    args = parse_args(argv)
    quiet_third_parties(args.verbose)
    return run_guarded('run.py', lambda: train(args))


def train(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings(args)
    train_config = check_inputs(args, settings)
    default_dir = REPOSITORY / 'runs' / f'{args.model}-{dataset_name(args)}-seed{train_config.seed}'
    run_dir = Path(args.out or default_dir)
    fresh = not (run_dir / 'metrics.json').exists() and not (run_dir / 'last.pt').exists()
    from ..train.distributed import Distributed

    distributed = Distributed.from_environment(args.device)  # joins torchrun's process group, if any
    try:
        return _train(args, settings, train_config, run_dir, distributed)
    except BaseException as error:
        if fresh and run_dir.is_dir() and distributed.is_main:
            # A run that died leaves a folder that says so, not one that looks like a finished run.
            (run_dir / 'FAILED').write_text(f'{type(error).__name__}: {error}\n')
        raise
    finally:
        distributed.close()


def _train(args: argparse.Namespace, settings: dict[str, dict[str, Any]], train_config, run_dir: Path,
           distributed) -> dict[str, Any]:
    import torch

    from .. import models
    from ..data.datasets import is_folder_dataset
    from ..graph import load_dataset, visual_width
    from ..metrics import format_scores
    from ..train import Trainer

    setup_logging(run_dir, distributed.rank)
    if distributed.is_main:
        (run_dir / 'FAILED').unlink(missing_ok=True)
    log = logging.getLogger('graphmner.run')
    log.info('settings: %s', json.dumps(settings, default=str))

    cls = models.model_class(args.model)
    images = cls.needs_image_features(cls.config_class(**settings['model']))
    data = {split: load_dataset(args.dataset, split, data_root=args.data_root, image_root=args.image_root,
                                captions=args.captions, images=images, on_disk=args.graphs_on_disk,
                                **settings['data'],
                                **({'cache_dir': args.cache_dir} if args.cache_dir else {}))
            for split in ('train', 'dev', 'test')}
    if not images:
        log.info('%s reads no image node: no visual features extracted', args.model)
    sources = cls.aux_sources(cls.config_class(**settings['model']))
    if sources and data['train'].report.get('tweets_with_aux', 0) == 0:
        # Trained so, the model's image-text view never sees a word of image text: a silent text-only run.
        raise UsageError(
            f"{args.model} reads aux words ({', '.join(sources)}) but none of the {len(data['train'])} "
            'training tweets has any: give --captions FILE (e.g. --captions '
            f'../shared/data/captions/blip2_{Path(args.dataset).name}.txt), or the images (--image-root) for '
            'tags and OCR, '
            'or --set model.aux_sources=[] to train without image text')
    model_fields = {f.name for f in dataclasses.fields(cls.config_class)}
    width = visual_width(data['train'])
    if 'visual_dim' in model_fields and width is not None:
        # The model's visual input width is the data's (ResNet 2048, the weight-free backend's own).
        settings['model']['visual_dim'] = width
    torch.manual_seed(train_config.seed)  # the model's initial weights depend on it
    model = models.build(args.model, labels=data['train'].labels, **settings['model']).to(distributed.device)
    train_report = data['train'].report
    model.data_config = {
        'dataset': args.dataset if not is_folder_dataset(args.dataset) else str(Path(args.dataset).resolve()),
        'options': dataclasses.asdict(data['train'].options),
        'captions': None if train_report.get('tweets_with_aux', 0) == 0 else _captions_used(args),
        'tokenizer': 'twitter2017' if args.dataset == 'twitter2017' else 'twitter2015',
        'images_seen': train_report.get('tweets', 0) - train_report.get('images_missing', 0),
    }
    for split, dataset in data.items():
        # Applied on access: no split is copied into a list of graphs.
        dataset.transform = model.graph_transform()
        report = dataset.report
        # Only what the model reads: a text model's tweets are not "without a usable image".
        counts = [f'{len(dataset)} tweets']
        if images:
            counts.append(f"{report.get('images_missing', 0)} without a usable image")
        if sources:
            counts.append(f"{report.get('tweets_with_aux', 0)} with aux words")
        log.info('%s: %s', split, ', '.join(counts))

    trainer = Trainer(model, data['train'], data['dev'], train_config, run_dir, distributed=distributed)
    trainer.fit(resume=args.resume)
    if not distributed.is_main:
        return {}  # rank 0 alone evaluates and writes the run folder
    dev = trainer.test(data['dev'], 'dev')
    test = trainer.test(data['test'])
    if dev['f1'] == 0 and not args.config and args.dataset not in NAMED_DATASETS:
        log.warning('dev F1 is 0: %s holds the settings for Twitter-2017 (about 4,000 training tweets); '
                    'for a small corpus try the demo-sized ones (more epochs, larger learning rates): '
                    '--config %s', config_path(args), CONFIGS / f'{args.model}_demo.yaml')
    save_predictions(model, trainer.eval_loader(data['test']), data['test'],
                     run_dir / 'test_predictions.txt', distributed.device)
    views = {}  # a model with several inference views (ITA) is also scored with each one forced
    if len(model.views) > 1:
        for view in model.views:
            with model.inference_view(view):
                views[view] = trainer.test(data['test'], f'test, {view} view')
    metrics = {
        'model': args.model, 'dataset': args.dataset, 'encoder': settings['model']['encoder'],
        'data_root': args.data_root, 'image_root': args.image_root, 'captions': args.captions,
        'labels': list(model.labels),
        'epochs': train_config.epochs, 'seed': train_config.seed, 'dev': dev, 'test': test,
        'processes': distributed.world_size,
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


def save_predictions(model, batches, graphs, path: Path, device) -> None:
    """The model's BIO labels for ``graphs`` (in the view in force) as CoNLL."""
    from ..data.conll import Tweet, write_conll

    model.eval()
    labels = [tweet for batch in batches for tweet in model.decode(batch.to(device))]
    write_conll([Tweet(g.image_id, list(g.words), pred) for g, pred in zip(graphs, labels, strict=True)],
                path)


def _captions_used(args: argparse.Namespace) -> str | None:
    """The caption file the training graphs read (the demo's own by default)."""
    if args.captions:
        return str(Path(args.captions).resolve())
    if args.dataset == 'demo':
        from ..data.demo import DEMO_CAPTIONS
        return str(DEMO_CAPTIONS)
    return None
