"""The experiment API: one typed run spec, checked, then run.

    >>> from graphmner.train.experiment import load_spec, run
    >>> spec = load_spec('umgf', 'twitter2017', data_root='../shared/data', overrides=['train.epochs=3'])
    >>> spec.validate()               # every user mistake, before anything heavy loads
    >>> result = run(spec)            # datasets, model, trainer, metrics.json
    >>> result.metrics['test']['f1'], result.run_dir

:func:`load_spec` reads the paper's hyper-parameters of a model on a dataset
(the package's ``graphmner/configs/<model>_<dataset>.yaml``, or any YAML file),
then typed values, then ``section.key=value`` overrides, into a
:class:`RunSpec`. :meth:`RunSpec.validate` finds every mistake a run would
otherwise meet after minutes of work: the typed configs, the device (probed:
``cuda:3`` on a machine without it), the dataset's files (parsed: a malformed
line is named by file and line), the image folder, the caption file and the
text encoder; each is an :class:`ExperimentError`, a one-line message.
:func:`run` trains and evaluates, writing the run folder (``metrics.json``,
``best.pt``, ``last.pt``, ``test_predictions.txt``, ``log.txt``,
``training.png``). ``graphmner train`` and the scripts in ``experiments/`` are
shells over these functions.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..graph.options import GraphOptions
from .settings import SECTIONS, SettingsError, apply_overrides, read_config, set_value
from .trainer import TrainConfig

if TYPE_CHECKING:
    from ..features.types import VisualWidths
    from ..models.base import MNERModel

__all__ = ['DEMO_ENCODER', 'ExperimentError', 'RunResult', 'RunSpec', 'build_model', 'check_device',
           'check_encoder', 'config_file', 'evaluate_graphs', 'fit', 'graphs_as_trained',
           'load_spec', 'run', 'save_predictions']

#: The offline encoder of this project's machines, beside the checkout (relative to the working
#: directory, as the README's commands are run): the demo's encoder when none is set, if it is there.
DEMO_ENCODER = Path('..') / 'shared' / 'models' / 'all-MiniLM-L6-v2'

log = logging.getLogger('graphmner.run')


class ExperimentError(SettingsError):
    """A run spec that cannot run: a user mistake, the message one line (a
    :class:`~graphmner.train.settings.SettingsError`, which every command shows so)."""


def config_file(model: str, dataset: str = 'demo') -> Path:
    """The package's config of ``model`` on ``dataset`` (``<model>_<dataset>.yaml``; a dataset folder
    reads the one of its definition, Twitter-2017's), found with :mod:`importlib.resources`."""
    from ..data.datasets import dataset_definition

    name = f'{model}_{dataset_definition(dataset).config}.yaml'
    return Path(str(resources.files('graphmner.configs').joinpath(name)))


@dataclass
class RunSpec:
    """Everything one training run needs, typed.

    Args:
        model (str): a registered model name (``bert-crf``, ``umgf``, ...).
        model_config: the model's config dataclass (``BertCRFConfig``, ...).
        dataset (str): ``demo``, ``twitter2015``, ``twitter2017`` or a folder holding
            ``train.txt``, ``valid.txt``, ``test.txt``. (default: ``'demo'``)
        data_root (str, optional): folder holding ``twitter2015/`` and ``twitter2017/``.
        image_root (str, optional): folder of the tweet images.
        captions (str, optional): a caption file for aux caption words.
        data (GraphOptions): how the graphs are built (the dataset's defaults applied).
        train (TrainConfig): the trainer's settings.
        out (Path, optional): the run folder (default: ``./runs/<model>-<dataset>-seed<seed>``
            under the working directory).
        device (str): ``'cpu'``, ``'cuda'``, ``'cuda:N'`` (under torchrun ``'cuda'``: each process
            the GPU of its ``LOCAL_RANK``). (default: ``'cpu'``)
        cache_dir (str, optional): graph and feature caches (default: ``graphs/cache``, or
            ``$GRAPHMNER_CACHE``).
        graphs_on_disk (bool): build each split into a graph file and stream it. (default: False)
        resume (bool): continue from ``<out>/last.pt``. (default: False)
        config (Path, optional): the YAML file the settings were read from (:func:`load_spec`).
    """

    model: str
    model_config: Any
    dataset: str = 'demo'
    data_root: str | None = None
    image_root: str | None = None
    captions: str | None = None
    data: GraphOptions = field(default_factory=GraphOptions)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: Path | None = None
    device: str = 'cpu'
    cache_dir: str | None = None
    graphs_on_disk: bool = False
    resume: bool = False
    config: Path | None = None

    @property
    def dataset_name(self) -> str:
        """The dataset's short name (a folder's own name), for run folders."""
        from ..data.datasets import is_folder_dataset
        return Path(self.dataset).name if is_folder_dataset(self.dataset) else self.dataset

    @property
    def run_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        return Path.cwd() / 'runs' / f'{self.model}-{self.dataset_name}-seed{self.train.seed}'

    def settings(self) -> dict[str, dict[str, Any]]:
        """The three config sections as plain values (logged, and kept in ``metrics.json``)."""
        return {'model': dataclasses.asdict(self.model_config), 'train': dataclasses.asdict(self.train),
                'data': dataclasses.asdict(self.data)}

    # -- checks ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Every check that needs no model or data loaded (:class:`ExperimentError` on the first
        mistake): the typed configs, the device, the data files, the text encoder, the run folder."""
        self.check_configs()
        check_device(self.device, self.train.precision)
        self.check_data()
        self.check_extractors()
        check_encoder(self.model_config.encoder)
        out = self.run_dir
        if out.exists() and not out.is_dir():
            raise ExperimentError(f"the run folder '{out}' (--out) is a file")

    def check_configs(self) -> None:
        from ..models import model_class
        from .distributed import per_rank_batch

        try:
            cls = model_class(self.model)
        except ValueError as error:
            raise ExperimentError(str(error)) from None
        for name, value, expected in (('model_config', self.model_config, cls.config_class),
                                      ('data', self.data, GraphOptions), ('train', self.train, TrainConfig)):
            if not isinstance(value, expected):
                raise ExperimentError(f"RunSpec.{name} of '{self.model}' must be a {expected.__name__}, "
                                      f'got {type(value).__name__}')
        try:
            self.model_config.check_graph_options(self.data)
        except ValueError as error:
            raise ExperimentError(str(error)) from None
        try:
            per_rank_batch(self.train.batch_size, int(os.environ.get('WORLD_SIZE', '1')))  # set by torchrun
        except ValueError as error:
            raise ExperimentError(str(error)) from None

    def check_extractors(self) -> None:
        """The files of the image extractors exist (vision weights, the detector's weights or Haar
        cascades, the OCR models), when the run reads images: each backend's fingerprint finds them."""
        from ..features.backends import detector_backend, vision_backend
        from ..features.ocr import OcrConfig
        from ..graph.builder import GraphBuilder
        from ..models import model_class

        if self.image_root is None and self.dataset != 'demo':
            return  # no photos: no extractor runs
        if not model_class(self.model).needs_image_features(self.model_config):
            return
        builder = GraphBuilder(self.data)
        try:
            vision_backend(builder.vision).fingerprint()
            detector = detector_backend(builder.detector)
            if detector is not None:
                detector.fingerprint()
            if self.data.ocr:
                OcrConfig(min_confidence=self.data.ocr_min_confidence).fingerprint()
        except (FileNotFoundError, ValueError) as error:
            raise ExperimentError(str(error).splitlines()[0]) from None

    def check_data(self) -> None:
        """The dataset's three split files exist and parse (a malformed line named by file and line),
        its labels are BIO, the image folder exists, the caption file parses."""
        from ..data.conll import read_conll
        from ..data.datasets import SPLITS, dataset_labels, split_path
        from ..features.image_text import read_captions

        for split in SPLITS:
            try:
                read_conll(split_path(self.dataset, split, self.data_root))
            except (ValueError, FileNotFoundError) as error:  # ConllFormatError names path:line
                raise ExperimentError(str(error)) from None
        try:
            dataset_labels(self.dataset, self.data_root)
        except ValueError as error:
            raise ExperimentError(f"dataset '{self.dataset}': {error}") from None
        if self.image_root is not None and not Path(self.image_root).is_dir():
            raise ExperimentError(f"--image-root '{self.image_root}' does not exist or is not a folder")
        if self.captions is not None:
            if not Path(self.captions).is_file():
                raise ExperimentError(f"--captions '{self.captions}' does not exist")
            try:
                read_captions(self.captions)
            except (ValueError, OSError) as error:
                raise ExperimentError(f'--captions: {error}') from None


def load_spec(model: str, dataset: str = 'demo', config: str | os.PathLike | None = None,
              overrides: Sequence[str] = (), values: Mapping[str, Mapping[str, Any]] | None = None,
              **fields: Any) -> RunSpec:
    """A run spec from a config file, then ``values``, then ``overrides``.

    Args:
        model: a registered model name.
        dataset: a named dataset or a folder.
        config: a YAML file of ``model`` / ``train`` / ``data`` sections (default:
            :func:`config_file`).
        overrides: ``section.key=value`` strings (``--set``), typed by the config field; last, so
            they win.
        values: typed values per section (``{'train': {'epochs': 3}}``), applied before
            ``overrides``.
        **fields: the other :class:`RunSpec` fields (``data_root``, ``out``, ``device``, ...).

    The demo without an encoder gets :data:`DEMO_ENCODER` (its absolute path when it is there;
    :meth:`RunSpec.validate` names it when it is not). A setting that does not fit its field, or a
    config that its dataclass refuses, is an :class:`ExperimentError`.
    """
    from ..data.datasets import dataset_definition
    from ..models import model_class

    try:
        cls = model_class(model)
        definition = dataset_definition(dataset)
    except ValueError as error:
        raise ExperimentError(str(error)) from None
    path = Path(config) if config is not None else config_file(model, dataset)
    if not path.is_file():
        raise ExperimentError(f"no config '{path}': write one or pass --config")
    classes = {'model': cls.config_class, 'train': TrainConfig, 'data': GraphOptions}
    try:
        settings = read_config(path, classes)
        for section, items in (values or {}).items():
            if section not in SECTIONS:
                raise ExperimentError(f"unknown settings section '{section}'; valid: {', '.join(SECTIONS)}")
            for key, value in items.items():
                set_value(section, classes[section], settings[section], key, value)
        apply_overrides(settings, list(overrides), classes)
    except SettingsError as error:
        raise ExperimentError(str(error)) from None
    if dataset == 'demo' and 'encoder' not in settings['model']:
        settings['model']['encoder'] = str(DEMO_ENCODER.resolve() if DEMO_ENCODER.is_dir() else DEMO_ENCODER)
    try:
        return RunSpec(model=model, model_config=cls.config_class(**settings['model']), dataset=str(dataset),
                       data=GraphOptions(**{**definition.graph_options, **settings['data']}),
                       train=TrainConfig(**settings['train']), config=path, **fields)
    except ValueError as error:
        raise ExperimentError(str(error)) from None


def check_device(device: str, precision: str = 'fp32') -> None:
    """``device`` names a device this machine has (probed), and ``precision`` runs on it."""
    import torch

    from .trainer import check_precision

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ExperimentError(f"--device '{device}' is not a device: give cpu, cuda or cuda:N") from None
    if parsed.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ExperimentError(f"--device '{device}': this machine has no CUDA device; use --device cpu")
        if 'WORLD_SIZE' in os.environ and int(os.environ['WORLD_SIZE']) > 1 and parsed.index is not None:
            raise ExperimentError(f"under torchrun give --device cuda, not '{device}': each process takes "
                                  'the GPU of its LOCAL_RANK')
        index = parsed.index if parsed.index is not None else int(os.environ.get('LOCAL_RANK', '0'))
        if index >= count:
            raise ExperimentError(f"--device '{device}': this machine has {count} CUDA device(s), "
                                  f'cuda:0 to cuda:{count - 1}')
    elif parsed.type == 'mps' and not torch.backends.mps.is_available():
        raise ExperimentError(f"--device '{device}': MPS is not available on this machine")
    elif parsed.type not in ('cpu', 'cuda', 'mps'):
        raise ExperimentError(f"--device '{device}': graphmner runs on cpu, cuda or mps")
    try:
        check_precision(precision, parsed)
    except ValueError as error:
        raise ExperimentError(str(error)) from None


def check_encoder(name: str) -> None:
    """A missing folder or, offline, an uncached hub name is a user mistake, found before anything
    heavy loads (no minute of hub retries)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise ExperimentError(f"--encoder '{name}' is a file; give a model folder or a hub name")
    if name == str(DEMO_ENCODER):
        raise ExperimentError(f"the demo's default encoder '{DEMO_ENCODER}' (beside the checkout) is not "
                              'there: give --encoder, a local model folder or a hub name such as '
                              'bert-base-uncased')
    # a path, not a hub name such as 'bert-base-uncased' or 'org/name'
    if name.startswith(('.', '/', '~')) or name.count('/') > 1:
        raise ExperimentError(f"--encoder '{name}': the folder does not exist")
    if os.environ.get('HF_HUB_OFFLINE') == '1':
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, 'config.json'), str):
            raise ExperimentError(f"--encoder '{name}' is not in the local Hugging Face cache and the hub "
                                  'is off (HF_HUB_OFFLINE=1): give a local model folder with --encoder PATH')


# -- running -------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What :func:`run` returns: the metrics written to ``metrics.json`` (empty on the other ranks
    of a torchrun), the run folder and the trained model (its best dev checkpoint's weights)."""

    metrics: dict[str, Any]
    run_dir: Path
    model: MNERModel | None = None

    def summary(self) -> str:
        """The lines ``graphmner train`` prints at the end of a run."""
        from ..metrics import format_scores

        m = self.metrics
        if not m:
            return ''
        lines = [f"\n{m['model']} on {m['dataset']} (best dev epoch, {m['train_seconds']:.0f} s training, "
                 f"{m['tweets_per_second']:.1f} tweets/s)",
                 'dev\n' + format_scores(m['dev']), 'test\n' + format_scores(m['test'])]
        lines += [f"test, {view} view: F1 {100 * scores['f1']:.2f}"
                  for view, scores in m['test_views'].items()]
        return '\n'.join(lines + [f'run folder: {self.run_dir}'])


def build_model(spec: RunSpec, labels: Sequence[str], widths: VisualWidths | None = None) -> MNERModel:
    """The spec's model, its visual input widths those of the vision backend that makes its graphs'
    features (``widths``; default: the backend of ``spec.data``, GMF's pyramid level widths
    included), its initial weights drawn from the spec's seed."""
    import torch

    from .. import models
    from ..graph import backend_widths

    config = spec.model_config.fit_visual_widths(widths if widths is not None else backend_widths(spec.data))
    torch.manual_seed(spec.train.seed)  # the model's initial weights depend on it
    return models.build(spec.model, labels=labels,
                        **{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})


def fit(spec: RunSpec, model: MNERModel, train: Sequence[Any], dev: Sequence[Any], distributed=None):
    """Trains ``model`` on the ``train`` graphs, keeping the best on ``dev``, as ``spec.train`` says,
    into ``spec.run_dir`` (``spec.resume``: from its ``last.pt``); returns the
    :class:`~graphmner.train.Trainer`, for its scores and history."""
    from .trainer import Trainer

    trainer = Trainer(model, train, dev, spec.train, spec.run_dir, device=spec.device,
                      distributed=distributed)
    trainer.fit(resume=spec.resume)
    return trainer


def run(spec: RunSpec) -> RunResult:
    """Validates ``spec``, then trains and evaluates it into its run folder.

    A run that dies leaves a ``FAILED`` file in a folder it created, so that it never looks like a
    finished run. Raises :class:`ExperimentError` for a user mistake (also one found only once the
    graphs are built: a model reading image text where no tweet has any).
    """
    spec.validate()
    run_dir = spec.run_dir
    fresh = not (run_dir / 'metrics.json').exists() and not (run_dir / 'last.pt').exists()
    from .distributed import Distributed

    distributed = Distributed.from_environment(spec.device)  # joins torchrun's process group, if any
    try:
        return _run(spec, run_dir, distributed)
    except BaseException as error:
        if fresh and run_dir.is_dir() and distributed.is_main:
            (run_dir / 'FAILED').write_text(f'{type(error).__name__}: {error}\n')
        raise
    finally:
        distributed.close()


def setup_logging(run_dir: Path, rank: int = 0) -> None:
    """Rank 0 logs to stdout and ``log.txt``; the other ranks of a torchrun only their warnings
    and errors, to stdout, marked with their rank."""
    if rank:
        logging.basicConfig(level=logging.WARNING, format=f'%(asctime)s [rank {rank}] %(name)s %(message)s',
                            datefmt='%H:%M:%S', handlers=[logging.StreamHandler(sys.stdout)], force=True)
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handlers = [logging.StreamHandler(sys.stdout), logging.FileHandler(run_dir / 'log.txt')]
    except OSError as error:
        raise ExperimentError(f"cannot write the run folder '{run_dir}' (--out): {error.strerror}") from None
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(message)s',
                        datefmt='%H:%M:%S', handlers=handlers, force=True)


def _load_splits(spec: RunSpec, images: bool) -> dict[str, Any]:
    from ..data.datasets import SPLITS
    from ..graph import load_dataset

    return {split: load_dataset(spec.dataset, split, data_root=spec.data_root, image_root=spec.image_root,
                                captions=spec.captions, images=images, on_disk=spec.graphs_on_disk,
                                **dataclasses.asdict(spec.data),
                                **({'cache_dir': spec.cache_dir} if spec.cache_dir else {}))
            for split in SPLITS}


def _run(spec: RunSpec, run_dir: Path, distributed) -> RunResult:
    from .. import models
    from ..data.datasets import is_folder_dataset
    from ..graph.data_config import DataConfig

    setup_logging(run_dir, distributed.rank)
    if distributed.is_main:
        (run_dir / 'FAILED').unlink(missing_ok=True)
    settings = spec.settings()
    log.info('settings: %s', json.dumps(settings, default=str))

    cls = models.model_class(spec.model)
    images = cls.needs_image_features(spec.model_config)
    data = _load_splits(spec, images)
    if not images:
        log.info('%s reads no image node: no visual features extracted', spec.model)
    sources = cls.aux_sources(spec.model_config)
    if sources and data['train'].report.get('tweets_with_aux', 0) == 0:
        # Trained so, the model's image-text view never sees a word of image text: a silent text-only run.
        raise ExperimentError(
            f"{spec.model} reads aux words ({', '.join(sources)}) but none of the {len(data['train'])} "
            'training tweets has any: give --captions FILE (e.g. --captions '
            f'../shared/data/captions/blip2_{spec.dataset_name}.txt), or the images (--image-root) for '
            'tags and OCR, or --set model.aux_sources=[] to train without image text')
    model = build_model(spec, data['train'].labels).to(distributed.device)
    settings['model'] = dataclasses.asdict(model.config)  # the visual widths the backend gave
    model.data_config = DataConfig.of_training(spec.dataset, data['train'], spec.captions)
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

    trainer = fit(spec, model, data['train'], data['dev'], distributed)
    if not distributed.is_main:
        return RunResult({}, run_dir, model)  # rank 0 alone evaluates and writes the run folder
    dev = trainer.test(data['dev'], 'dev')
    test = trainer.test(data['test'])
    default_config = spec.config == config_file(spec.model, spec.dataset)
    if dev['f1'] == 0 and is_folder_dataset(spec.dataset) and default_config:
        log.warning('dev F1 is 0: %s holds the settings for Twitter-2017 (about 4,000 training tweets); '
                    'for a small corpus try the demo-sized ones (more epochs, larger learning rates): '
                    '--config %s', spec.config, config_file(spec.model, 'demo'))
    save_predictions(model, trainer.eval_loader(data['test']), data['test'],
                     run_dir / 'test_predictions.txt', distributed.device)
    views = {}  # a model with several inference views (ITA) is also scored with each one forced
    if len(model.views) > 1:
        for view in model.views:
            with model.inference_view(view):
                views[view] = trainer.test(data['test'], f'test, {view} view')
    metrics = {
        'model': spec.model, 'dataset': spec.dataset, 'encoder': spec.model_config.encoder,
        'data_root': spec.data_root, 'image_root': spec.image_root, 'captions': spec.captions,
        'labels': list(model.labels),
        'epochs': spec.train.epochs, 'seed': spec.train.seed, 'dev': dev, 'test': test,
        'processes': distributed.world_size,
        'train_seconds': round(trainer.train_seconds, 2),
        'tweets_per_second': round(trainer.tweets_per_second, 2),
        'test_views': views,
        'images_missing': {split: d.report.get('images_missing', 0) for split, d in data.items()},
        'settings': settings, 'history': trainer.history,
        'finished': time.strftime('%Y-%m-%dT%H:%M:%S'),
    }
    (run_dir / 'metrics.json').write_text(json.dumps(metrics, indent=2, default=str))
    return RunResult(metrics, run_dir, model)


def save_predictions(model: MNERModel, batches: Iterable[Any], graphs: Sequence[Any], path: Path,
                     device: Any) -> None:
    """The model's BIO labels for ``graphs`` (in the view in force) as CoNLL."""
    from ..data.conll import Tweet, write_conll

    model.eval()
    labels = [tweet for batch in batches for tweet in model.decode(batch.to(device))]
    write_conll([Tweet(g.image_id, list(g.words), pred) for g, pred in zip(graphs, labels, strict=True)],
                path)


# -- trained models on other data ------------------------------------------------------------------


def graphs_as_trained(model: MNERModel, dataset: str, split: str = 'test', data_root: str | None = None,
                   image_root: str | None = None, captions: str | None = None,
                   cache_dir: str | None = None) -> list[Any]:
    """``dataset``'s ``split`` graphs built as ``model``'s training graphs were (the graph options
    its checkpoint's data config records). Raises :class:`ExperimentError` when the dataset's
    label set is not the model's."""
    from ..data.datasets import dataset_labels
    from ..graph import load_dataset

    labels = dataset_labels(dataset, data_root)
    if tuple(labels) != tuple(model.labels):
        raise ExperimentError(f"{dataset} tags {' '.join(labels)} but the {model.name} model tags "
                              f"{' '.join(model.labels)}: it cannot be scored there")
    options = model.data_config.options if model.data_config is not None else GraphOptions()
    return list(load_dataset(dataset, split, data_root=data_root, image_root=image_root, captions=captions,
                             images=model.needs_image_features(model.config), **dataclasses.asdict(options),
                             **({'cache_dir': cache_dir} if cache_dir else {})))


def evaluate_graphs(model: MNERModel, graphs: Sequence[Any], scheme: str = 'conlleval', batch_size: int = 64,
                    transform: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Span scores of ``model`` on copies of ``graphs``, each passed through ``transform`` (if any)
    and then the model's own graph transform, as in training."""
    from torch_geometric.loader import DataLoader

    model_transform = model.graph_transform()
    ready = [model_transform(transform(g.clone()) if transform is not None else g.clone()) for g in graphs]
    return model.evaluate(DataLoader(ready, batch_size=batch_size), scheme)
