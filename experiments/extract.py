"""Precompute a dataset's frozen visual features (and its graphs) into the shared cache, in shards.

    python experiments/extract.py --dataset twitter2017 --data-root ../shared/data \\
        --image-root data/twitter2017_images --shard 0/4           # one of 4 shards (0/4 ... 3/4)
    torchrun --nproc_per_node 4 experiments/extract.py --dataset twitter2017 ...   # one shard per rank
    python experiments/extract.py --dataset twitter2017 ... --check --graphs      # the final pass

A shard takes every n-th distinct photo of the chosen splits (sorted by image id) and writes
each photo's features into the feature cache (--cache-dir, shared by all machines) with
write-then-rename, so shards on many machines over one shared file system never collide and
a killed shard leaves no half entry: run it again and it does only what is missing.

The final pass (--check; under torchrun rank 0 runs it once every rank is done) reports what
is missing: photos whose features are in no cache entry, by id, beside the tweets without a
photo and the photos that cannot be used. With --graphs it then builds each split's graphs
from the cache (--graphs-on-disk: graph files for streaming). The exit status is 1 while a
usable photo is missing, else 0.

The extractor settings are the data section of a training run's spec (the experiment API's
load_spec: the package's graphmner/configs/<model>_<dataset>.yaml; --model, default umgf) and
--set data.KEY=VALUE: the features land under the cache key a training run with those settings reads.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphmner.cli import (
    MODEL_NAMES,
    Parser,
    UsageError,
    offline_environment,
    quiet_third_parties,
    run_guarded,
)

log = logging.getLogger('graphmner.extract')
SPLITS = ('train', 'dev', 'test')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = Parser(prog='extract.py', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataset', default='demo', help='demo, twitter2015, twitter2017 or a folder with '
                   'train.txt, valid.txt, test.txt (default: demo)')
    p.add_argument('--data-root', help='folder holding twitter2015/ and twitter2017/ (e.g. ../shared/data)')
    p.add_argument('--image-root', help='folder of the tweet images (<image_id>.jpg); the demo has its own')
    p.add_argument('--captions', help='BLIP-2 caption file, for --graphs')
    p.add_argument('--splits', nargs='+', choices=SPLITS, default=list(SPLITS), help='(default: all three)')
    p.add_argument('--model', choices=MODEL_NAMES, default='umgf', help='whose config gives the extractor '
                   'settings (data section of graphmner/configs/<model>_<dataset>.yaml; default: umgf)')
    p.add_argument('--set', action='append', default=[], metavar='data.KEY=VALUE',
                   help='override an extractor setting (e.g. --set data.vision_weights=resnet50.pth)')
    p.add_argument('--cache-dir', help='folder of the feature and graph caches (default: graphs/cache, or '
                   '$GRAPHMNER_CACHE); the same for every shard')
    p.add_argument('--shard', metavar='I/N', help='extract shard I of N (0 <= I < N); under torchrun the '
                   "default is the process's rank of the world size")
    p.add_argument('--device', default='cpu', help="where the backbone and detector run: 'cpu', 'cuda' "
                   '(under torchrun the GPU of LOCAL_RANK) or cuda:N; not part of the cache key')
    p.add_argument('--check', action='store_true', help='the final pass only: report what is missing')
    p.add_argument('--graphs', action='store_true', help='after the final pass, build the graphs of the '
                   'splits from the cache')
    p.add_argument('--graphs-on-disk', action='store_true', help='with --graphs: graph files, for streaming')
    return p.parse_args(argv)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``'I/N'`` -> ``(I, N)``; without one, torchrun's rank and world size, or ``(0, 1)``."""
    if text is None:
        return int(os.environ.get('RANK', '0')), int(os.environ.get('WORLD_SIZE', '1'))
    index, sep, count = text.partition('/')
    if not (sep and index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)):
        raise UsageError(f"--shard takes I/N with 0 <= I < N (e.g. --shard 0/4), got '{text}'")
    return int(index), int(count)


class Photos:
    """The distinct photos of some splits, and the tweets that have none."""

    def __init__(self):
        self.paths: dict[str, Path] = {}    # image id -> file, sorted by id
        self.without: dict[str, str] = {}   # image id -> why there is no photo


def find_photos(dataset: str, splits: list[str], data_root, image_root) -> Photos:
    from graphmner.data import read_conll
    from graphmner.data.datasets import split_path
    from graphmner.data.paths import image_id_problem, image_path

    photos = Photos()
    for split in splits:
        for tweet in read_conll(split_path(dataset, split, data_root)):
            if tweet.image_id in photos.paths or tweet.image_id in photos.without:
                continue
            problem = image_id_problem(tweet.image_id)
            path = None if problem or image_root is None else image_path(image_root, tweet.image_id)
            if path is None:
                photos.without[tweet.image_id] = problem or 'no file under the image folder'
            else:
                photos.paths[tweet.image_id] = path
    photos.paths = dict(sorted(photos.paths.items()))
    return photos


def extractor_settings(args: argparse.Namespace):
    """The graph builder a training run with these settings uses (its feature
    extractor's settings are the cache key), the image folder, the cache folder
    and the graph options; the dataset's files checked first (parsed)."""
    from graphmner.graph import GraphBuilder
    from graphmner.graph.datasets import DEFAULT_CACHE
    from graphmner.train.experiment import load_spec

    spec = load_spec(args.model, args.dataset, overrides=args.set, data_root=args.data_root,
                     image_root=args.image_root, captions=args.captions, cache_dir=args.cache_dir)
    spec.check_data()
    image_root = args.image_root
    if args.dataset == 'demo':
        from graphmner.data.demo import demo_image_root
        image_root = image_root or demo_image_root()
    cache_dir = Path(args.cache_dir) if args.cache_dir else DEFAULT_CACHE
    builder = GraphBuilder(spec.data, image_root=image_root, feature_cache=cache_dir / 'features')
    return builder, image_root, cache_dir, dataclasses.asdict(spec.data)


def extraction_device(device: str) -> str:
    """``--device``, with ``cuda`` under torchrun meaning this rank's GPU (``cuda:LOCAL_RANK``)."""
    if device == 'cuda' and 'LOCAL_RANK' in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device


def extract_shard(builder, photos: Photos, index: int, count: int, device: str = 'cpu') -> dict:
    """Features of every ``count``-th photo from ``index`` on, into the cache."""
    from graphmner.features.extract import FeatureExtractor

    mine = list(photos.paths.values())[index::count]
    vision, detector = (dataclasses.replace(config, device=device) for config in (builder.vision,
                                                                                   builder.detector))
    extractor = FeatureExtractor(vision, detector, cache_dir=builder.feature_cache, progress=index == 0)
    start = time.perf_counter()
    extractor.extract(mine)
    report = extractor.report
    log.info('shard %d/%d: %s in %.1f s', index, count, report.summary(), time.perf_counter() - start)
    return {'photos': len(mine), 'cached': report.cached, 'computed': report.computed,
            'unusable': report.unusable}


def check(builder, photos: Photos) -> dict:
    """Which photos have features in the cache, which cannot be used, which are missing."""
    from graphmner.data.images import decode_image, read_bytes
    from graphmner.features.cache import bytes_sha256
    from graphmner.features.extract import FeatureExtractor

    cache = FeatureExtractor(builder.vision, builder.detector, cache_dir=builder.feature_cache).cache
    cached, unusable, missing = 0, {}, []
    for image_id, path in photos.paths.items():
        data, failed = read_bytes(path)
        if failed is None and bytes_sha256(data) in cache:
            cached += 1
            continue
        if failed is None:
            failed = decode_image(data, name=str(path))
            if failed.image is not None:  # usable, yet no shard stored its features
                missing.append(image_id)
                continue
        unusable[image_id] = failed.problem
    return {'photos': len(photos.paths), 'cached': cached, 'missing': missing, 'unusable': unusable,
            'tweets_without_photo': len(photos.without), 'cache': str(cache.dir)}


def main(argv: list[str] | None = None) -> int:
    offline_environment()
    args = parse_args(argv)
    quiet_third_parties()
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(message)s', datefmt='%H:%M:%S',
                        force=True)
    return run_guarded('extract.py', lambda: extract(args))


def extract(args: argparse.Namespace) -> int:
    from graphmner.train.distributed import Distributed
    from graphmner.train.experiment import check_device

    index, count = parse_shard(args.shard)
    builder, image_root, cache_dir, options = extractor_settings(args)
    check_device(args.device)  # probed before any photo is read
    photos = find_photos(args.dataset, args.splits, args.data_root, image_root)
    # Under torchrun the ranks meet once every shard is written; rank 0 then checks.
    distributed = Distributed.from_environment('cpu') if args.shard is None else Distributed()
    try:
        if not args.check:
            extract_shard(builder, photos, index, count, extraction_device(args.device))
            distributed.barrier()
        last_pass = args.check or count == 1 or (args.shard is None and distributed.is_main)
        if not last_pass:
            return 0
        found = check(builder, photos)
    finally:
        distributed.close()
    print(f"{found['photos']} photos: {found['cached']} with features in {found['cache']}, "
          f"{len(found['unusable'])} unusable, {len(found['missing'])} missing; "
          f"{found['tweets_without_photo']} tweets without a photo")
    for image_id, problem in list(found['unusable'].items())[:20]:
        print(f'  unusable: {image_id}: {problem}')
    if found['missing']:
        print(f"  missing (run their shards again): {', '.join(found['missing'][:50])}"
              + (' ...' if len(found['missing']) > 50 else ''))
        return 1
    if args.graphs:
        from graphmner.graph import load_dataset
        for split in args.splits:
            graphs = load_dataset(args.dataset, split, data_root=args.data_root, image_root=image_root,
                                  captions=args.captions, cache_dir=cache_dir, on_disk=args.graphs_on_disk,
                                  **options)
            print(f"{split}: {len(graphs)} graphs ({'built' if graphs.built else 'already cached'})")
    return 0


if __name__ == '__main__':
    sys.exit(main())
