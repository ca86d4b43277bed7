"""The benchmark corpus: Twitter text at full scale, every tweet with a photo.

    python experiments/bench_corpus.py --out /tmp/bench-corpus      # writes the 3,373 photos once

No Twitter photo is on these machines, so every throughput figure measured on
Twitter alone prices the text path. This corpus gives each tweet of a Twitter
split (by default Twitter-2017 train, 3,373 tweets) a photo of its own, named by
the tweet's real image id: a fresh random crop of one of scikit-image's sample
photos, as the visual-dependence probe makes them. A third show a face (OpenCV's
cascades find it: an object node tagged ``person``), a third carry a printed
sign (RapidOCR reads it: ``ocr`` aux words), the rest are textures and
close-ups. The BLIP-2 caption of the tweet's real photo
(``../shared/data/captions/``) matches by image id, so every tweet also has
caption words. With :data:`BENCH_OPTIONS` a tweet's graph holds every visual
node type: 7x7 regions and a pyramid (a random-weight ResNet-152, the width the
papers use), objects, and caption, tag and OCR aux words.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.printed_text import PLACES, print_lines  # noqa: E402
from graphmner.cli import fail, quiet_third_parties  # noqa: E402

quiet_third_parties()  # before torch_geometric's import warns about torch.jit

from tqdm.auto import tqdm  # noqa: E402

from graphmner import models  # noqa: E402
from graphmner.data import read_conll, split_path  # noqa: E402
from graphmner.data.demo import DEMO_OPTIONS, demo_image_root  # noqa: E402
from graphmner.data.images import load_image  # noqa: E402
from graphmner.data.paths import image_path  # noqa: E402
from graphmner.graph import GraphBuilder, GraphOptions, backend_widths  # noqa: E402
from graphmner.models.base import MNERModel  # noqa: E402
from graphmner.train.settings import SECTIONS, apply_overrides  # noqa: E402

#: The photos a corpus image is cut from (all bundled with scikit-image).
FACE_PHOTOS = ('astronaut', 'camera')
OTHER_PHOTOS = ('brick', 'grass', 'gravel', 'rocket', 'hubble_deep_field', 'chelsea', 'coffee', 'retina',
                'clock_motion')
#: Signs printed on a third of the photos (made-up names; the OCR reads them as aux words).
SIGNS = ('HALVERN BANK', 'DUNMOOR PARK', 'TRAXA FESTIVAL', 'ORSK UNITED', 'PELLO STREET', 'MIRADA CUP')
#: Width x height of a corpus photo: a Twitter thumbnail's size, larger than the 224 crops a backbone reads.
PHOTO_SIZE = (480, 360)
#: Graph options of the benchmarks that read the corpus: every visual node type, on weights to be had
#: offline (the speed of a random-weight ResNet-152 is a pretrained one's).
BENCH_OPTIONS: dict[str, Any] = {'vision_arch': 'resnet152', 'vision_weights': None,
                                 'detector_arch': 'cascade', 'detector_weights': 'opencv', 'ocr': True,
                                 'spacy_model': DEMO_OPTIONS['spacy_model']}
#: Each visual method with every aux source it can read, so that every visual node is in its graphs.
ALL_EVIDENCE = 'model.aux_sources=[caption,tag,ocr]'


def default_captions(dataset: str, data_root: str | Path) -> Path:
    """The BLIP-2 caption file of ``dataset``'s real photos beside the data (``<root>/captions/``)."""
    return Path(data_root) / 'captions' / f'blip2_{dataset}.txt'


def build_corpus(out: str | Path, dataset: str = 'twitter2017', split: str = 'train',
                 data_root: str | Path = ROOT.parent / 'shared' / 'data', seed: int = 0) -> Path:
    """Writes one photo per tweet of ``dataset``'s ``split`` into ``out/images/<image_id>.jpg`` (reused
    when a stamp says the same settings wrote it) and returns that image folder."""
    from torchvision.transforms import v2 as T

    out = Path(out)
    images = out / 'images'
    tweets = read_conll(split_path(dataset, split, data_root))
    settings = {'dataset': dataset, 'split': split, 'tweets': len(tweets), 'seed': seed, 'size': PHOTO_SIZE,
                'faces': FACE_PHOTOS, 'others': OTHER_PHOTOS, 'signs': SIGNS, 'version': 1}
    stamp = out / 'corpus.json'
    if stamp.exists() and json.loads(stamp.read_text()) == json.loads(json.dumps(settings)):
        return images
    images.mkdir(parents=True, exist_ok=True)
    root = demo_image_root()
    photos = {p: load_image(image_path(root, p)).image for p in FACE_PHOTOS + OTHER_PHOTOS}
    size = (PHOTO_SIZE[1], PHOTO_SIZE[0])  # torchvision takes height, width
    face_crop = T.Compose([T.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
                           T.RandomHorizontalFlip(), T.ColorJitter(0.2, 0.2, 0.2)])
    other_crop = T.Compose([T.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True),
                            T.ColorJitter(0.2, 0.2, 0.2)])
    rng = random.Random(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # torchvision's random transforms draw from torch
        for i, tweet in enumerate(tqdm(tweets, desc='corpus photos', unit='photo', disable=None)):
            if i % 3 == 0:
                image = face_crop(photos[rng.choice(FACE_PHOTOS)])
            else:
                image = other_crop(photos[rng.choice(OTHER_PHOTOS)])
                if i % 3 == 1:
                    image = print_lines(image, rng.choice(SIGNS).split(), size=rng.randint(28, 36),
                                        where=rng.choice(PLACES))
            image.save(images / f'{tweet.image_id}.jpg', quality=90)
    stamp.write_text(json.dumps(settings, indent=1))
    return images


def corpus_builder(out: str | Path, dataset: str = 'twitter2017', split: str = 'train',
                   data_root: str | Path = ROOT.parent / 'shared' / 'data',
                   cache_dir: str | Path | None = None, progress: bool = True,
                   **options: Any) -> tuple[list, GraphBuilder]:
    """The corpus in ``out`` (written first where missing): the split's tweets and a
    :class:`GraphBuilder` with every visual node (:data:`BENCH_OPTIONS`, updated by ``options``) and the
    real photos' BLIP-2 captions, its features cached in ``cache_dir`` (default ``out/cache``)."""
    image_root = build_corpus(out, dataset, split, data_root)
    builder = GraphBuilder(GraphOptions(**{**BENCH_OPTIONS, **options}), image_root=image_root,
                           captions=default_captions(dataset, data_root),
                           feature_cache=Path(cache_dir or Path(out) / 'cache'), progress=progress)
    return read_conll(split_path(dataset, split, data_root)), builder


def written_corpus(folder: str | Path, command: str) -> dict[str, str]:
    """The dataset and split of the corpus in ``folder`` (its stamp), for :func:`corpus_graphs` to
    read it as written; a folder without one is a user mistake (one line, exit 2): a benchmark never
    writes the 3,373 photos behind a user's back."""
    stamp = Path(folder) / 'corpus.json'
    if not stamp.is_file():
        fail(command, f"'{folder}' holds no benchmark corpus (no corpus.json); write it with: "
                      f'python experiments/bench_corpus.py --out {folder}')
    written = json.loads(stamp.read_text())
    return {'dataset': written['dataset'], 'split': written['split']}


def corpus_model(name: str, encoder: str, evidence: bool = False) -> MNERModel:
    """Model ``name`` as its paper has it (the package defaults, ITA reading its caption), fitted to the
    visual widths of :data:`BENCH_OPTIONS`' backend; with ``evidence`` it also reads every aux source
    (:data:`ALL_EVIDENCE`) where it can read any."""
    config_class = models.model_class(name).config_class
    settings: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    if evidence and 'aux_sources' in {f.name for f in dataclasses.fields(config_class)}:
        apply_overrides(settings, [ALL_EVIDENCE], {'model': config_class})
    widths = backend_widths(GraphOptions(**BENCH_OPTIONS))
    config = config_class(encoder=encoder, **settings['model']).fit_visual_widths(widths)
    return models.build(name, **dataclasses.asdict(config))


def corpus_graphs(out: str | Path, tweets: int, **kwargs: Any) -> list:
    """The graphs of the corpus's first ``tweets`` tweets (:func:`corpus_builder`'s arguments); features
    are extracted once, then read from the cache."""
    split, builder = corpus_builder(out, **kwargs)
    graphs, report = builder(split[:tweets])
    missing = report['images_missing']
    if missing:
        raise RuntimeError(f'{missing} of {len(graphs)} corpus tweets have no usable photo: '
                           f"{report['image_problems']}")
    return graphs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='folder of the corpus (images/, corpus.json)')
    p.add_argument('--dataset', default='twitter2017')
    p.add_argument('--split', default='train')
    p.add_argument('--data-root', default=str(ROOT.parent / 'shared' / 'data'))
    args = p.parse_args()
    images = build_corpus(args.out, args.dataset, args.split, args.data_root)
    print(f'{sum(1 for _ in images.glob("*.jpg"))} photos in {images}')


if __name__ == '__main__':
    main()
