"""Visual-dependence probe: does each visual model actually read the image?

    python experiments/probe_visual.py                        # every registered model, MiniLM, descriptors
    python experiments/probe_visual.py --models bert-crf umgf --epochs 10 --seed 1
    python experiments/probe_visual.py --features-only        # cosine and linear probe, descriptors vs ResNet
    python experiments/probe_visual.py --family evidence      # faces and printed signs: tags and OCR tell

The probe dataset is built from scikit-image's photos (the demo's eleven),
grouped into four families, one per entity type. Every tweet names one person
from the same dozen made-up names under every type ("so proud of Talmira right
now"), so the text says where the entity is but never which type it has; the
type is decided ONLY by the family of the tweet's photo. Each tweet gets a
fresh random crop of its photo (resized crop, flip, colour jitter), different
in every split. A text-only model can find the spans but must guess their
type; a model that reads the image can tell the type from the photo.

For each model (the registry's, bert-crf included) the script trains through
the experiment API (a run spec of the model's demo config,
``graphmner/configs/<model>_demo.yaml``, then the flags; its ``build_model``
and ``fit``) with the same encoder, seed and training settings, and prints
test span F1, test F1 when every tweet is given another test tweet's image,
and how much the emissions move when the images of each evaluation batch are
shuffled among its tweets (mean absolute change over real words; the
emissions' own mean absolute value for scale).

It also prints, for the probe's ``image.x`` under the weight-free descriptors
and under a random-weight ResNet-50, the mean pairwise cosine between crops of
different photos and a linear classifier's test accuracy (multinomial logistic
regression on training-standardised ``image.x``, trained on the train split).

``--family evidence`` puts the type where a detector or the OCR finds it instead (faces -> PER,
printed signs whose second word names an organisation, a place or an event -> ORG, LOC, MISC; see
:data:`EVIDENCE_TYPE`), builds its graphs with OpenCV's cascades and RapidOCR, prints how many faces
and sign words they found, and by default trains :data:`EVIDENCE_VARIANTS`: each visual method as its
paper has it and the readers of image text (ITA, and UMGF / MAF / GMF with ``aux_sources``).

The data are written as an ``IMGID:`` CoNLL folder (``train.txt``,
``valid.txt``, ``test.txt``) with ``images/`` under ``<cache-dir>/probe`` and
built into graphs by :class:`~graphmner.graph.GraphBuilder` (no detector: UMGF
uses the whole-image node). These numbers say whether a model reads its visual
input, nothing about results with pretrained features or the papers' numbers.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault('YOLO_OFFLINE', 'true')
os.environ.setdefault('HF_HUB_OFFLINE', '1')

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.printed_text import PLACES, print_lines  # noqa: E402
from graphmner.cli import quiet_third_parties  # noqa: E402

quiet_third_parties()  # before torch_geometric's import warns about torch.jit

from torch_geometric.data import HeteroData  # noqa: E402
from torch_geometric.loader import DataLoader  # noqa: E402

from graphmner import models  # noqa: E402
from graphmner.data.conll import Tweet, read_conll, write_conll  # noqa: E402
from graphmner.data.demo import DEMO_OPTIONS, demo_image_root  # noqa: E402
from graphmner.data.images import load_image  # noqa: E402
from graphmner.data.labels import BIO_LABELS  # noqa: E402
from graphmner.data.paths import image_path  # noqa: E402
from graphmner.features.types import VisualWidths  # noqa: E402
from graphmner.graph import GraphBuilder, GraphOptions, build_graph, schema  # noqa: E402
from graphmner.graph.builder import backend_widths, graph_features  # noqa: E402
from graphmner.graph.datasets import DEFAULT_CACHE  # noqa: E402
from graphmner.graph.inspect import aux_sources  # noqa: E402
from graphmner.train import experiment  # noqa: E402

#: Entity type -> the photos of its family (all bundled with scikit-image).
FAMILIES: dict[str, tuple[str, ...]] = {
    'PER': ('astronaut', 'camera'),                                # people
    'LOC': ('brick', 'grass', 'gravel'),                           # ground textures
    'ORG': ('rocket', 'hubble_deep_field'),                        # spaceflight
    'MISC': ('chelsea', 'coffee', 'retina', 'clock_motion'),       # close-ups
}
PHOTO_TYPE = {photo: entity_type for entity_type, photos in FAMILIES.items() for photo in photos}

#: The evidence family (``--family evidence``): the type is what a detector finds or what the photo has
#: printed on it, so that a model reading image text (ITA, or UMGF / MAF / GMF with ``aux_sources``)
#: can take it from the object tags or the OCR words. PER: a crop of a photo with a face (OpenCV's face
#: cascades tag it ``person``); ORG, LOC, MISC: a crop of one of the other photos with a sign naming a
#: made-up organisation, place or event ("HALVERN BANK", "DUNMOOR PARK", "TRAXA FESTIVAL"), the same
#: made-up first words under every type, so only the second word tells the type.
FACE_PHOTOS: tuple[str, ...] = FAMILIES['PER']
SIGN_WORDS: dict[str, tuple[str, ...]] = {
    'ORG': ('BANK', 'UNITED', 'AIRWAYS', 'RECORDS', 'MOTORS', 'COLLEGE'),
    'LOC': ('STREET', 'PARK', 'LAKE', 'BEACH', 'AVENUE', 'VALLEY'),
    'MISC': ('FESTIVAL', 'AWARDS', 'CUP', 'MARATHON', 'EXPO', 'SERIES'),
}
SIGN_NAMES: tuple[str, ...] = ('HALVERN', 'DUNMOOR', 'ORSK', 'TRAXA', 'PELLO', 'KESTWICK', 'MIRADA', 'BOLTAN')
SIGN_BACKGROUNDS: tuple[str, ...] = tuple(p for p in PHOTO_TYPE if p not in FACE_PHOTOS)
EVIDENCE_TYPE = {**{f'face-{photo}': 'PER' for photo in FACE_PHOTOS},
                 **{f'sign-{entity_type}': entity_type for entity_type in SIGN_WORDS}}
#: Entity type of every image kind, both families (the kind ends each probe image id).
IMAGE_TYPE = {**PHOTO_TYPE, **EVIDENCE_TYPE}
FAMILY_NAMES = ('photos', 'evidence')

#: Made-up names, every one used under every type.
NAMES: tuple[str, ...] = ('Zorvek', 'Talmira', 'Quenbro', 'Ostrel', 'Vashti Dunmore', 'Kelvaro',
                          'Brisna', 'Yuldan Pereth', 'Marquon', 'Fennick', 'Ilsabet', 'Drovan Kesh')

TEMPLATES: tuple[str, ...] = (
    '{name} posted this today', 'look what {name} sent us !', "can't stop thinking about {name} #weekend",
    'so proud of {name} right now', '{name} again , as always', 'new photo from {name}',
    'who else saw {name} yesterday ?', 'throwback to {name} last summer', 'big thanks to {name} for this',
    '{name} said it would look like this')

#: Tweets per split of the full probe.
SIZES: dict[str, int] = {'train': 180, 'dev': 60, 'test': 60}
SPLIT_FILES = {'train': 'train.txt', 'dev': 'valid.txt', 'test': 'test.txt'}
CROP_SIZE = 224

#: The probe's graph options: the weight-free descriptors and no detector.
PROBE_OPTIONS: dict[str, Any] = {'vision_arch': 'descriptors', 'vision_weights': None,
                                 'detector_weights': None}
#: The evidence family's: the same descriptors, OpenCV's cascades as detector, and OCR.
EVIDENCE_OPTIONS: dict[str, Any] = {**PROBE_OPTIONS, 'detector_arch': 'cascade', 'detector_weights': 'opencv',
                                    'ocr': True, 'spacy_model': DEMO_OPTIONS['spacy_model']}
#: The models the evidence family trains by default: each visual method as its paper has it, and the
#: image-text readers (name, model, --set values).
EVIDENCE_VARIANTS: tuple[tuple[str, ...], ...] = (
    ('bert-crf', 'bert-crf'), ('umgf', 'umgf'), ('maf', 'maf'), ('gmf', 'gmf'),
    ('ita-tags-ocr', 'ita', 'model.aux_sources=[tag,ocr]'),
    # ITA learns the image text more slowly (its text-only view trains at full weight beside it)
    ('ita-tags-ocr-30', 'ita', 'model.aux_sources=[tag,ocr]', 'train.epochs=30'),
    ('umgf-aux', 'umgf', 'model.aux_sources=[tag,ocr]'),
    ('maf-aux', 'maf', 'model.aux_sources=[tag,ocr]'),
    ('gmf-aux', 'gmf', 'model.aux_sources=[tag,ocr]'))
#: A random-weight ResNet-50 on the same photos, for the feature comparison.
RANDOM_RESNET_OPTIONS: dict[str, Any] = {'vision_arch': 'resnet50', 'vision_weights': None,
                                         'detector_weights': None}

log = logging.getLogger('graphmner.probe')


# -- the probe dataset --------------------------------------------------------------------------
def probe_tweet(image_id: str, entity_type: str, rng: random.Random) -> Tweet:
    """One tweet naming a random made-up person in a random template, typed ``entity_type``."""
    name = rng.choice(NAMES).split()
    words, labels = [], []
    for token in rng.choice(TEMPLATES).split():
        if token == '{name}':
            words += name
            labels += [f'B-{entity_type}'] + [f'I-{entity_type}'] * (len(name) - 1)
        else:
            words.append(token)
            labels.append('O')
    return Tweet(image_id, words, labels)


def build_probe(folder: Path, sizes: dict[str, int] = SIZES, seed: int = 0, captions: bool = False,
                family: str = 'photos') -> Path:
    """Writes the probe (CoNLL splits, crops under ``images/``, and with
    ``captions`` a caption file giving each crop its source photo's demo
    caption) into ``folder``; reuses what is there when it was written with the
    same settings. ``family``: ``'photos'`` (:data:`FAMILIES`: the photo's
    look tells the type) or ``'evidence'`` (faces and printed signs:
    :data:`EVIDENCE_TYPE`). Returns ``folder``."""
    from torchvision.transforms import v2 as T

    if family not in FAMILY_NAMES:
        raise ValueError(f'build_probe: family must be one of {FAMILY_NAMES}, got {family!r}')
    if captions and family == 'evidence':
        raise ValueError("build_probe: the evidence family has no captions (its evidence is the detector's "
                         'and the OCR\'s)')
    settings = {'sizes': sizes, 'seed': seed, 'families': FAMILIES, 'names': NAMES, 'templates': TEMPLATES,
                'crop': CROP_SIZE, 'captions': captions, 'version': 1}
    if family == 'evidence':
        settings.update(family=family, signs=SIGN_WORDS, sign_names=SIGN_NAMES, version=2)
    stamp = folder / 'probe.json'
    if stamp.exists() and json.loads(stamp.read_text()) == json.loads(json.dumps(settings)):
        return folder
    images = folder / 'images'
    images.mkdir(parents=True, exist_ok=True)
    root = demo_image_root()
    photos = {p: load_image(image_path(root, p)).image for p in PHOTO_TYPE}
    augment = T.Compose([T.RandomResizedCrop(CROP_SIZE, scale=(0.35, 1.0), antialias=True),
                         T.RandomHorizontalFlip(), T.ColorJitter(0.2, 0.2, 0.2)])
    # Faces: crops that keep most of the photo, so that the face is in; signs: never mirrored.
    face_augment = T.Compose([T.RandomResizedCrop(CROP_SIZE, scale=(0.6, 1.0), antialias=True),
                              T.RandomHorizontalFlip(), T.ColorJitter(0.2, 0.2, 0.2)])
    sign_augment = T.Compose([T.RandomResizedCrop(CROP_SIZE, scale=(0.35, 1.0), antialias=True),
                              T.ColorJitter(0.2, 0.2, 0.2)])
    demo_captions = {}
    if captions:
        from graphmner.data.demo import DEMO_CAPTIONS
        from graphmner.features.image_text import read_captions
        demo_captions = read_captions(DEMO_CAPTIONS)
    caption_lines = []
    for k, (split, n) in enumerate(sizes.items()):
        rng = random.Random(seed * 100 + k)
        types = [t for _ in range(-(-n // len(FAMILIES))) for t in FAMILIES][:n]
        rng.shuffle(types)
        tweets = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 100 + k)  # torchvision's random transforms draw from torch
            for i, entity_type in enumerate(types):
                if family == 'photos':
                    photo = rng.choice(FAMILIES[entity_type])
                    kind, image = photo, augment(photos[photo])
                elif entity_type == 'PER':
                    photo = rng.choice(FACE_PHOTOS)
                    kind, image = f'face-{photo}', face_augment(photos[photo])
                else:
                    background = sign_augment(photos[rng.choice(SIGN_BACKGROUNDS)])
                    sign = [rng.choice(SIGN_NAMES), rng.choice(SIGN_WORDS[entity_type])]
                    kind, image = f'sign-{entity_type}', print_lines(
                        background, sign, size=rng.randint(24, 30), where=rng.choice(PLACES))
                image_id = f'{split}_{i:04d}_{kind}'
                image.save(images / f'{image_id}.jpg', quality=90)
                tweets.append(probe_tweet(image_id, entity_type, rng))
                if captions:
                    caption_lines.append(f'{image_id}.jpg :{demo_captions[photo]}')
        write_conll(tweets, folder / SPLIT_FILES[split])
    if captions:
        (folder / 'captions.txt').write_text('\n'.join(caption_lines) + '\n')
    stamp.write_text(json.dumps(settings, indent=1))
    return folder


def photo_of(g: HeteroData) -> str:
    """The kind of a probe tweet's image (its image id ends with it): the source photo, or in the
    evidence family ``face-<photo>`` and ``sign-<type>`` (:data:`IMAGE_TYPE` gives its entity type)."""
    return g.image_id.split('_', 2)[2]


def probe_graphs(folder: Path, options: dict[str, Any], cache: Path,
                 splits: tuple[str, ...] = ('train', 'dev', 'test')) -> dict[str, list[HeteroData]]:
    """The probe's graphs per split, built with ``options`` (features cached under ``cache``)."""
    captions = folder / 'captions.txt'
    builder = GraphBuilder(GraphOptions(**options), image_root=folder / 'images',
                           captions=captions if captions.exists() else None, feature_cache=cache)
    out = {}
    for split in splits:
        graphs, report = builder(read_conll(folder / SPLIT_FILES[split]))
        if report['images_missing']:
            raise RuntimeError(f'probe {split}: {report["images_missing"]} images unusable: {report}')
        out[split] = graphs
    return out


# -- the image-feature measurements ----------------------------------------------------------------
def mean_cosine_between_photos(graphs: list[HeteroData]) -> float:
    """Mean cosine of ``image.x`` over pairs of tweets whose photos differ."""
    x = F.normalize(torch.cat([g[schema.IMAGE].x for g in graphs]).double(), dim=1)
    photos = [photo_of(g) for g in graphs]
    different = torch.tensor([[a != b for b in photos] for a in photos])
    return float((x @ x.T)[different].mean())


def linear_probe(train: list[HeteroData], test: list[HeteroData], label=lambda g: IMAGE_TYPE[photo_of(g)],
                 steps: int = 300, weight_decay: float = 1e-3) -> float:
    """Test accuracy of multinomial logistic regression on ``image.x``,
    standardised with training statistics and fitted on ``train`` (L-BFGS)."""
    x_train = torch.cat([g[schema.IMAGE].x for g in train]).double()
    x_test = torch.cat([g[schema.IMAGE].x for g in test]).double()
    mean, std = x_train.mean(0), x_train.std(0).clamp(min=1e-8)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    classes = sorted({label(g) for g in train})
    y_train = torch.tensor([classes.index(label(g)) for g in train])
    y_test = torch.tensor([classes.index(label(g)) if label(g) in classes else -1 for g in test])
    weight = torch.zeros(x_train.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x_train @ weight + bias, y_train) + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float(((x_test @ weight + bias).argmax(1) == y_test).double().mean())


def feature_report(graphs: dict[str, list[HeteroData]]) -> dict[str, float]:
    return {'dim': int(graphs['train'][0][schema.IMAGE].x.shape[-1]),
            'norm': float(torch.cat([g[schema.IMAGE].x for g in graphs['test']]).norm(dim=1).mean()),
            'cosine': mean_cosine_between_photos(graphs['test']),
            'type_accuracy': linear_probe(graphs['train'], graphs['test']),
            'photo_accuracy': linear_probe(graphs['train'], graphs['test'], label=photo_of)}


# -- what the detector and the OCR found --------------------------------------------------------------
def probe_name(data_seed: int, captions: bool = False, family: str = 'photos') -> str:
    """The probe's folder under ``<cache-dir>/probe``."""
    return f'seed{data_seed}' + '-captions' * captions + (f'-{family}' if family != 'photos' else '')


def evidence_report(graphs: list[HeteroData]) -> dict[str, dict[str, int]]:
    """Per image kind: how many images there are, how many the detector gave a ``person`` object, and
    how many have among their OCR words a sign word of the kind's type (:data:`SIGN_WORDS`)."""
    report: dict[str, dict[str, int]] = {}
    for g in graphs:
        kind = photo_of(g)
        objects = set(getattr(g, 'object_names', None) or ())
        ocr = {w for w, source in zip(g.aux_words, aux_sources(g)) if source == 'ocr'}
        entry = report.setdefault(kind, {'images': 0, 'person': 0, 'sign_word_read': 0})
        entry['images'] += 1
        entry['person'] += 'person' in objects
        entry['sign_word_read'] += bool(ocr & set(SIGN_WORDS.get(IMAGE_TYPE[kind], ())))
    return dict(sorted(report.items()))


def evidence_table(report: dict[str, dict[str, int]]) -> str:
    lines = [f"{'image kind':<20} {'type':>5} {'images':>7} {'person found':>13} {'sign word read':>15}"]
    for kind, r in report.items():
        lines.append(f"{kind:<20} {IMAGE_TYPE[kind]:>5} {r['images']:>7} {r['person']:>13} "
                     f"{r['sign_word_read']:>15}")
    return '\n'.join(lines)


# -- images of other tweets --------------------------------------------------------------------------
def with_image_of(g: HeteroData, donor: HeteroData) -> HeteroData:
    """``g``'s tweet with ``donor``'s image: its visual nodes and its image-text
    (aux) words; the donor's objects are linked to every word."""
    aux = list(zip(donor.aux_words, (schema.AUX_SOURCES[s] for s in donor[schema.AUX].source.tolist())))
    return build_graph(Tweet(g.image_id, list(g.words), list(g.labels)), graph_features(donor), aux=aux,
                       widths=VisualWidths.uniform(int(g[schema.IMAGE].x.shape[-1])),
                       visual_backend=g.visual_backend)


def shuffled_images(graphs: list[HeteroData], batch_size: int) -> list[HeteroData]:
    """Each tweet with the image of the next tweet of its batch (of ``batch_size``
    consecutive tweets), the last with the first's."""
    out = []
    for start in range(0, len(graphs), batch_size):
        chunk = graphs[start:start + batch_size]
        out += [with_image_of(g, chunk[(i + 1) % len(chunk)]) for i, g in enumerate(chunk)]
    return out


@torch.no_grad()
def emission_shift(model: models.MNERModel, graphs: list[HeteroData], shuffled: list[HeteroData],
                   batch_size: int) -> dict[str, float]:
    """Mean absolute change of the emissions over real words between the two
    graph lists (tweet by tweet), and the emissions' mean absolute value."""
    model.eval()
    device = next(model.parameters()).device
    change = scale = count = 0.0
    for a, b in zip(DataLoader(graphs, batch_size=batch_size), DataLoader(shuffled, batch_size=batch_size)):
        out_a, out_b = model(a.to(device)), model(b.to(device))
        mask = out_a.mask.unsqueeze(-1)
        change += float(((out_a.emissions - out_b.emissions).abs() * mask).sum())
        scale += float((out_a.emissions.abs() * mask).sum())
        count += float(mask.sum()) * out_a.emissions.shape[-1]
    return {'emission_change': change / count, 'emission_scale': scale / count}


# -- training --------------------------------------------------------------------------------------------
def model_spec(name: str, encoder: str, out: Path, overrides: list[str], device: str = 'cpu',
               model: str | None = None):
    """The run spec of ``model`` (default: ``name``) with its demo config
    (``graphmner/configs/<model>_demo.yaml``, the small-data settings of each method), ``encoder`` and
    ``overrides`` (``--set``), validated; its run folder is ``out/name``."""
    spec = experiment.load_spec(model or name, 'demo', values={'model': {'encoder': encoder}},
                                overrides=overrides, out=out / name, device=device)
    spec.check_configs()
    experiment.check_device(spec.device, spec.train.precision)
    experiment.check_encoder(spec.model_config.encoder)
    return spec


def run_model(name: str, graphs: dict[str, list[HeteroData]], encoder: str, out: Path, *, epochs: int,
              seed: int, overrides: list[str] = (), device: str = 'cpu', model_name: str | None = None,
              options: dict[str, Any] = PROBE_OPTIONS) -> dict[str, Any]:
    """Trains ``model_name`` (default: ``name``; ``name`` is the row's, e.g. a variant's) on the probe
    through the experiment API and scores it, also with the test tweets' images shuffled. ``options``:
    the graph options ``graphs`` were built with."""
    spec = model_spec(name, encoder, out, [f'train.epochs={epochs}', f'train.seed={seed}', *overrides],
                      device, model=model_name)
    train_config = spec.train
    model = experiment.build_model(spec, BIO_LABELS, backend_widths(GraphOptions(**options))).to(device)
    transform = model.graph_transform()
    # Transforms edit graphs in place: every model gets its own copies.
    split = {s: [transform(g.clone()) for g in gs] for s, gs in graphs.items()}
    trainer = experiment.fit(spec, model, split['train'], split['dev'])
    test = trainer.test(split['test'])
    batch = train_config.eval_batch_size
    in_batch = [transform(g) for g in shuffled_images(graphs['test'], batch)]
    # Every tweet with an image of another test tweet: the F1 a model keeps without the right photo.
    rolled = graphs['test'][7:] + graphs['test'][:7]
    elsewhere = [transform(with_image_of(g, donor)) for g, donor in zip(graphs['test'], rolled)]
    shuffled_f1 = model.evaluate(trainer.eval_loader(elsewhere), train_config.scheme)['f1']
    return {'model': name, 'method': spec.model, 'sets': list(overrides), 'test_f1': test['f1'],
            'per_type': {t: s['f1'] for t, s in test['per_type'].items()},
            'test_f1_other_images': shuffled_f1, **emission_shift(model, split['test'], in_batch, batch),
            'train_seconds': round(trainer.train_seconds, 1),
            'settings': {'model': dataclasses.asdict(model.config),
                         'train': dataclasses.asdict(train_config)}}


def table(rows: list[dict[str, Any]]) -> str:
    header = ['model', 'epochs', 'test F1', 'F1, other images', 'emission change', 'emission scale',
              'change / scale', 'train s', *FAMILIES]
    lines = [[r['model'], str(r['settings']['train']['epochs']), f"{100 * r['test_f1']:.1f}",
              f"{100 * r['test_f1_other_images']:.1f}", f"{r['emission_change']:.4g}",
              f"{r['emission_scale']:.3g}", f"{r['emission_change'] / r['emission_scale']:.3g}",
              f"{r['train_seconds']:.0f}",
              *(f"{100 * r['per_type'].get(t, 0.0):.1f}" for t in FAMILIES)] for r in rows]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    render = lambda row: '  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(row, widths)))
    return '\n'.join(render(row) for row in [header, *lines])


def feature_table(reports: dict[str, dict[str, float]]) -> str:
    lines = [f"{'image.x of':<22} {'width':>6} {'mean norm':>10} {'cosine between photos':>22} "
             f"{'linear probe: type':>19} {'photo':>6}"]
    for name, r in reports.items():
        lines.append(f"{name:<22} {r['dim']:>6} {r['norm']:>10.3g} {r['cosine']:>22.3f} "
                     f"{100 * r['type_accuracy']:>18.1f}% {100 * r['photo_accuracy']:>5.1f}%")
    return '\n'.join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--models', nargs='+', default=None, choices=models.available(),
                   help='models to train (default: with --family photos every registered one, '
                   f'{" ".join(models.available())}; with --family evidence those of EVIDENCE_VARIANTS)')
    p.add_argument('--variant', nargs='+', action='append', default=[], metavar='NAME MODEL SET',
                   help='also train a named variant: its name, its model, then section.key=value settings '
                   '(repeatable; e.g. --variant umgf-aux umgf model.aux_sources=[tag,ocr])')
    p.add_argument('--family', choices=FAMILY_NAMES, default='photos',
                   help="what tells the type: the photo's look ('photos', default) or a face the detector "
                   "finds and a sign the OCR reads ('evidence': cascade detector and OCR on)")
    p.add_argument('--encoder', default=str(experiment.DEMO_ENCODER.resolve()),
                   help=f'text encoder, the same for every model (default: {experiment.DEMO_ENCODER})')
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--data-seed', type=int, default=0, help='seed of the probe dataset (crops, names)')
    p.add_argument('--train', type=int, default=SIZES['train'], help='training tweets')
    p.add_argument('--dev', type=int, default=SIZES['dev'], help='dev tweets')
    p.add_argument('--test', type=int, default=SIZES['test'], help='test tweets')
    p.add_argument('--captions', action='store_true',
                   help="give each crop its source photo's demo caption as aux words (ITA reads them)")
    p.add_argument('--features-only', action='store_true', help='only the image.x measurements')
    p.add_argument('--no-resnet', action='store_true', help='skip the random ResNet-50 comparison')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                   help='override a model or train setting of every model, e.g. --set train.head_lr=1e-3')
    p.add_argument('--cache-dir', type=Path, default=DEFAULT_CACHE, help='probe data and feature cache')
    p.add_argument('--out', type=Path, default=Path('runs') / 'probe',
                   help='run folders, results.json (default: runs/probe under the working directory)')
    p.add_argument('--device', default='cpu')
    args = p.parse_args(argv)
    for variant in args.variant:
        if len(variant) < 2 or variant[1] not in models.available():
            p.error(f"--variant takes a name, a model ({', '.join(models.available())}) and settings, "
                    f'got {variant}')
    if args.captions and args.family == 'evidence':
        p.error("--captions: the evidence family has no captions (its image text is the detector's tags "
                'and the OCR words)')
    return args


def trained_rows(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(name, model, --set values) of every row to train: --models and --variant, or the family's
    default (every registered model; :data:`EVIDENCE_VARIANTS`)."""
    if args.models is None and not args.variant:
        if args.family == 'evidence':
            return [(name, model, list(sets)) for name, model, *sets in EVIDENCE_VARIANTS]
        return [(name, name, []) for name in models.available()]
    return [(name, name, []) for name in args.models or ()] + [
        (name, model, list(sets)) for name, model, *sets in args.variant]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(message)s', datefmt='%H:%M:%S')
    sizes = {'train': args.train, 'dev': args.dev, 'test': args.test}
    name = probe_name(args.data_seed, args.captions, args.family)
    folder = build_probe(args.cache_dir / 'probe' / name, sizes, args.data_seed, captions=args.captions,
                         family=args.family)
    features = args.cache_dir / 'features'
    options = EVIDENCE_OPTIONS if args.family == 'evidence' else PROBE_OPTIONS
    graphs = probe_graphs(folder, options, features)
    reports = {'descriptors': feature_report(graphs)}
    if not args.no_resnet:
        reports['random ResNet-50'] = feature_report(probe_graphs(folder, RANDOM_RESNET_OPTIONS, features))
    results: dict[str, Any] = {'probe': str(folder), 'family': args.family, 'sizes': sizes,
                               'features': reports, 'visual_backend': graphs['train'][0].visual_backend,
                               'evidence': evidence_report(graphs['test'])}
    print(f'\nprobe: {folder} ({sizes}); visual features: {results["visual_backend"]}')
    print(feature_table(reports))
    print(evidence_table(results['evidence']))
    if not args.features_only:
        rows = []
        for name, model, sets in trained_rows(args):
            start = time.perf_counter()
            rows.append(run_model(name, graphs, args.encoder, args.out, epochs=args.epochs, seed=args.seed,
                                  overrides=[*args.set, *sets], device=args.device, model_name=model,
                                  options=options))
            log.info('%s: %.0f s', name, time.perf_counter() - start)
            print(table(rows[-1:]))
        results['models'] = rows
        print(f'\nencoder {args.encoder}, seed {args.seed}')
        print(table(rows))
        baseline = next((r['test_f1'] for r in rows if r['model'] == 'bert-crf'), None)
        if baseline is not None:
            for r in rows:
                if r['model'] != 'bert-crf':
                    print(f"{r['model']}: {100 * (r['test_f1'] - baseline):+.1f} F1 over bert-crf")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'results.json').write_text(json.dumps(results, indent=2, default=str))
    return results


if __name__ == '__main__':
    main()
