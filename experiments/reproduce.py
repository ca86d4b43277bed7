"""Runs a grid of trainings (models x datasets x seeds, plus named ablations) and writes its table.

Every run is a run spec of the experiment API (graphmner/train/experiment.py, as ``graphmner train``'s),
validated before any run of the grid trains, into
<runs>/<name>/<method>-<dataset>-seed<seed>/; a run whose folder holds metrics.json is skipped, one with
last.pt resumes, so a killed grid is restarted with the same command. A command naming part of a grid
(one model, one seed) trains that part and writes the table of the grid results/<name>.json was written
from, grown by this command's (``--replace-table``: this command's grid alone). The results are written to
results/<name>.md, results/<name>.json and results/<name>.png: mean +- std over seeds of test P / R / F1
and per-type F1, dev F1, tweets/s and training time; a paired bootstrap of each method against bert-crf
on the same dataset and seed (saved test predictions); the papers' numbers from experiments/papers.yaml.
Run folders stay on the machine that trained them: a seed of the grid whose folder is not here keeps the
scores results/<name>.json recorded (the table lists those seeds under "Kept from"), and every run's test
labels are kept in results/<name>-predictions/, so that its bootstraps can be computed elsewhere.

    # here (CPU, MiniLM, 3 epochs, seeds 1-3; ITA reads the BLIP-2 captions, the others ignore them)
    python experiments/reproduce.py --name twitter2017-minilm --datasets twitter2017 --seeds 1 2 3 \\
        --epochs 3 --data-root ../shared/data --encoder ../shared/models/all-MiniLM-L6-v2 \\
        --captions ../shared/data/captions/blip2_{dataset}.txt
    # an ablation: a name, the model, then its --set values
    python experiments/reproduce.py --name umgf-ablations --models umgf --ablation umgf-no-gate umgf \\
        model.gate=false --datasets twitter2017 --data-root ../shared/data --seeds 1 2 3
    # add --dry-run to print the grid and every run's settings without training, --table-only to write
    # the tables from the runs finished so far without training the others

Cross-domain (UMGF Table 4): ``--cross-domain TARGET ...`` trains nothing; it tests each finished run's
best.pt on the test split of every TARGET other than its own dataset (graphs built with the run's own
graph options) and writes results/<name>-cross-domain.md|json beside the runs' in-domain F1 and the
F1 of the same method and seeds trained on the target (from this grid, or from ``--target-grid NAME``,
whose runs must share this grid's encoder and epochs, and read images and captions alike). A model
tags with its training label set, so a target with another label set stops the harness (exit 2), as
does a target grid run trained otherwise.

    python experiments/reproduce.py --name twitter2017-minilm --datasets twitter2017 --seeds 1 \\
        --data-root ../shared/data --cross-domain twitter2015 --target-grid twitter2015-minilm

Beside it: experiments/missing_images.py (F1 of a grid's or the probe's runs with all, half and none of
the images usable) and experiments/results_table.py (README's results block from results/*.json).
"""

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphmner.cli import MODEL_NAMES, offline_environment, quiet_third_parties, run_guarded

#: The checkout this script belongs to: its results/ and experiments/papers.yaml.
REPOSITORY = Path(__file__).resolve().parents[1]
PAPERS = REPOSITORY / 'experiments' / 'papers.yaml'
BASELINE = 'bert-crf'
TYPES = ('PER', 'LOC', 'ORG', 'MISC')
LEVEL = 0.05
COLUMNS = ('method', 'dataset', 'encoder', 'epochs', 'seeds', 'test F1', 'P', 'R', *TYPES, 'dev F1',
           'tweets/s', 'train s', 'vs bert-crf', 'vs default', 'paper F1')


@dataclass
class Run:
    method: str            # the row's name: a model, or an ablation's name
    model: str
    dataset: str
    seed: int
    sets: list[str] = field(default_factory=list)  # the ablation's --set values
    out: Path = Path()

    def spec(self, options: argparse.Namespace):
        """This run's spec (:func:`graphmner.train.experiment.load_spec`): its model's config on its
        dataset, the grid's flags, then the grid's ``--set`` values and the ablation's (last, so they win)."""
        from graphmner.train.experiment import load_spec

        values = {'model': {'encoder': options.encoder} if options.encoder else {},
                  'train': {key: value for key, value in (('seed', self.seed), ('epochs', options.epochs),
                                                          ('batch_size', options.batch_size))
                            if value is not None},
                  'data': {key: None if value.lower() == 'none' else value
                           for key, value in (('vision_weights', options.vision_weights),
                                              ('detector_weights', options.detector_weights))
                           if value is not None}}
        return load_spec(self.model, self.dataset, overrides=[*options.set, *self.sets], values=values,
                         data_root=options.data_root,
                         image_root=per_dataset(options.image_root, self.dataset),
                         captions=per_dataset(options.captions, self.dataset), out=self.out,
                         cache_dir=options.cache_dir, device=options.device or 'cpu',
                         resume=(self.out / 'last.pt').exists())

    @property
    def done(self) -> bool:
        return (self.out / 'metrics.json').exists()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--name', required=True, help='the grid\'s name: results/<name>.md, runs/<name>/')
    p.add_argument('--models', nargs='*', default=list(MODEL_NAMES), choices=MODEL_NAMES,
                   help='models to run (default: all)')
    p.add_argument('--ablation', nargs='+', action='append', default=[], metavar='NAME MODEL SET',
                   help='a named variant: its name, its model, then section.key=value settings '
                   '(repeatable; e.g. --ablation umgf-no-gate umgf model.gate=false)')
    p.add_argument('--datasets', nargs='+', default=['demo'], help='datasets (default: demo)')
    p.add_argument('--seeds', nargs='+', type=int, default=[1, 2, 3], help='seeds (default: 1 2 3)')
    p.add_argument('--runs-dir', type=Path, default=Path('runs'),
                   help='parent of <name>/ (default: runs under the working directory)')
    p.add_argument('--results-dir', type=Path, default=REPOSITORY / 'results', help='where the tables go')
    p.add_argument('--resamples', type=int, default=1000, help='bootstrap resamples (default: 1000)')
    p.add_argument('--cross-domain', nargs='+', metavar='TARGET',
                   help="test every finished run on these datasets' test splits (its own excepted); trains "
                   'nothing (e.g. --cross-domain twitter2015)')
    p.add_argument('--target-grid', metavar='NAME',
                   help='with --cross-domain: the grid (runs/<NAME>/) whose runs of the same methods and '
                   'seeds, trained on the targets, give the "trained on target F1" column')
    p.add_argument('--table-only', action='store_true',
                   help="train nothing: the tables from the grid's finished runs; the others are listed")
    p.add_argument('--replace-table', action='store_true',
                   help="a table of this command's grid only (by default it also keeps the models, "
                   'ablations, datasets and seeds of the grid results/<name>.json was written from)')
    p.add_argument('--dry-run', action='store_true',
                   help="print the grid and each run's settings; train nothing")
    p.add_argument('--data-root')
    p.add_argument('--encoder')
    p.add_argument('--epochs', type=int)
    p.add_argument('--batch-size', type=int)
    p.add_argument('--cache-dir')
    p.add_argument('--device')
    p.add_argument('--vision-weights')
    p.add_argument('--detector-weights')
    p.add_argument('--image-root', help="image folder; '{dataset}' is replaced (e.g. data/{dataset}_images)")
    p.add_argument('--captions', help="caption file; '{dataset}' is replaced "
                   '(e.g. ../shared/data/captions/blip2_{dataset}.txt)')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                   help='a setting for every run of the grid')
    args = p.parse_args(argv)
    for ablation in args.ablation:
        if len(ablation) < 2 or ablation[1] not in MODEL_NAMES:
            p.error(f"--ablation takes a name, a model ({', '.join(MODEL_NAMES)}) and settings, "
                    f'got {ablation}')
    return args


def grid(args: argparse.Namespace) -> list[Run]:
    rows = [(model, model, []) for model in args.models]
    rows += [(name, model, list(sets)) for name, model, *sets in args.ablation]
    folder = args.runs_dir / args.name
    return [Run(method, model, dataset, seed, sets, folder / f'{method}-{Path(dataset).name}-seed{seed}')
            for dataset in args.datasets for method, model, sets in rows for seed in args.seeds]


def describe(spec) -> str:
    """The run's data, device and folder, as one line."""
    fields = ('model', 'dataset', 'data_root', 'image_root', 'captions', 'device', 'cache_dir', 'resume')
    return ' '.join(f'{key}={getattr(spec, key)}' for key in fields
                    if getattr(spec, key) not in (None, False))


def dry_run(runs: list[Run], args: argparse.Namespace) -> None:
    """Each run's spec and settings; nothing is validated (a dry run of a GPU grid runs anywhere)."""
    for run in runs:
        spec = run.spec(args)
        print(f"{'done' if run.done else 'to run'}  {run.out}")
        print('  spec: ' + describe(spec))
        print('  settings: ' + json.dumps(spec.settings(), default=str, sort_keys=True))


def train_missing(runs: list[Run], args: argparse.Namespace) -> None:
    """Trains the runs not finished yet, after validating all of them (a mistake in the last run's
    settings stops the grid before the first trains)."""
    from graphmner.train import experiment

    missing = [(run, run.spec(args)) for run in runs if not run.done]
    for _, spec in missing:
        spec.validate()
    for run in runs:
        if run.done:
            print(f'skip (metrics.json exists): {run.out}')
    for run, spec in missing:
        print(f'train: {describe(spec)} -> {run.out}', flush=True)
        result = experiment.run(spec)
        print(result.summary())


# -- the table -------------------------------------------------------------------------


class GridError(ValueError):
    """A command whose runs would share runs/<name>/ and its table with runs trained otherwise."""


def table_grid(args: argparse.Namespace) -> argparse.Namespace:
    """The grid the table covers: this command's, grown by the one results/<name>.json was written
    from, so that a command training a slice of a grid (one model, one seed) adds its runs to the table
    rather than leaving a table of the slice alone. Refuses (:class:`GridError`) an encoder or a number
    of epochs other than that grid's: its finished runs would be skipped as if trained so."""
    path = args.results_dir / f'{args.name}.json'
    if args.replace_table or not path.exists():
        return args
    earlier = json.loads(path.read_text())['grid']
    for key in ('encoder', 'epochs'):
        if earlier.get(key) != getattr(args, key):
            given = [f"--{key} {value}" if value is not None else f"no --{key} (each config's own)"
                     for value in (earlier.get(key), getattr(args, key))]
            raise GridError(f"{shown_path(path)}'s runs were trained with {given[0]}, this command gives "
                            f'{given[1]}: give it another --name')
    grown, kept = argparse.Namespace(**vars(args)), []
    for key, shown in (('models', 'models'), ('ablation', 'ablations'), ('datasets', 'datasets'),
                       ('seeds', 'seeds')):
        ours, theirs = getattr(args, key), earlier[key]
        name = (lambda entry: entry[0]) if key == 'ablation' else (lambda entry: entry)
        ours_by_name = {name(e): e for e in ours}
        extra = [entry for entry in theirs if name(entry) not in ours_by_name]
        if extra:  # the earlier grid's order, this command's additions after it (its own settings win)
            setattr(grown, key, [ours_by_name.pop(name(e), e) for e in theirs] + list(ours_by_name.values()))
            kept.append(f"{shown} {' '.join(str(name(e)) for e in extra)}")
    grown.seeds = sorted(grown.seeds)
    if kept:
        print(f"the table keeps {shown_path(path)}'s {'; '.join(kept)} (--replace-table: this command's "
              'grid only)')
    return grown


def shown_path(path: Path) -> str:
    """``path`` as the results files name it: relative to the repository (``runs/...``, ``../runs/...``),
    so that a committed table names no folder of the machine it was measured on."""
    return os.path.relpath(Path(path).resolve(), REPOSITORY.resolve())


def spread(values: list[float]) -> dict[str, Any]:
    return {'mean': statistics.fmean(values), 'std': statistics.stdev(values) if len(values) > 1 else 0.0,
            'values': values}


def spread_cell(s: dict[str, Any] | None, digits: int = 2) -> str:
    """'82.44' for one seed (a std of one value says nothing), '81.90 ± 0.72' over several, '' for none."""
    if s is None:
        return ''
    if len(s['values']) == 1:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def read_papers(path: Path = PAPERS) -> list[dict[str, Any]]:
    import yaml

    return yaml.safe_load(path.read_text())


#: results/<name><PREDICTIONS>/ keeps each run's test labels, so that a bootstrap against a run trained
#: on another machine can still be computed.
PREDICTIONS = '-predictions'


def stored_predictions(run: Run, args: argparse.Namespace) -> Path:
    """Where the table keeps a run's test labels: results/<name>-predictions/<run folder>.txt, one tweet
    a line."""
    return args.results_dir / f'{args.name}{PREDICTIONS}' / f'{run.out.name}.txt'


def predictions(run: Run, args: argparse.Namespace) -> list[list[str]] | None:
    """The run's test labels: its folder's ``test_predictions.txt`` when the run is here, else the copy
    the table keeps (:func:`stored_predictions`), else None."""
    from graphmner.data.conll import read_conll

    path = run.out / 'test_predictions.txt'
    if path.exists():
        return [tweet.labels for tweet in read_conll(path)]
    stored = stored_predictions(run, args)
    return [line.split() for line in stored.read_text().splitlines()] if stored.exists() else None


def store_predictions(runs: list[Run], args: argparse.Namespace) -> None:
    """Copies the test labels of the grid's runs that are here into results/<name>-predictions/."""
    for run in runs:
        if run.done and (run.out / 'test_predictions.txt').exists():
            path = stored_predictions(run, args)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(''.join(' '.join(labels) + '\n' for labels in predictions(run, args)))


def gold_test(dataset: str, data_root: str | None) -> list[Any]:
    from graphmner.data import split_path
    from graphmner.data.conll import read_conll

    return read_conll(split_path(dataset, 'test', data_root))


def against_baseline(run: Run) -> str:
    """The row a run's "vs bert-crf" bootstrap compares it with."""
    return BASELINE


def against_default(run: Run) -> str | None:
    """The row an ablation's "vs default" bootstrap compares it with: its model's row, the same
    settings but the ablation's (before / after a switch); None for a model's own row."""
    return run.model if run.sets else None


def significance(runs: list[Run], args: argparse.Namespace, kept: set[tuple[str, str, int]] = frozenset(),
                 reference: Callable[[Run], str | None] = against_baseline
                 ) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (method, dataset): one paired bootstrap per seed against the row ``reference`` names (at the
    same dataset and seed) where both have test labels (:func:`predictions`), among the runs finished here
    and the ``kept`` (method, dataset, seed)."""
    from graphmner.significance import paired_bootstrap

    counted = {(r.method, r.dataset, r.seed): r for r in runs
               if r.done or (r.method, r.dataset, r.seed) in kept}
    labels: dict[tuple[str, str, int], list[list[str]] | None] = {}

    def labels_of(key: tuple[str, str, int]) -> list[list[str]] | None:  # each run's file read once
        if key not in labels:
            labels[key] = predictions(counted[key], args)
        return labels[key]

    tests: dict[tuple[str, str], list[dict[str, Any]]] = {}
    gold_of: dict[str, list[list[str]]] = {}
    for key, run in counted.items():
        other = (reference(run), run.dataset, run.seed)
        if other[0] in (None, run.method) or other not in counted:
            continue
        pred, pred_reference = labels_of(key), labels_of(other)
        if pred is None or pred_reference is None:
            continue
        if run.dataset not in gold_of:
            gold_of[run.dataset] = [t.labels for t in gold_test(run.dataset, args.data_root)]
        result = paired_bootstrap(gold_of[run.dataset], pred, pred_reference, resamples=args.resamples,
                                  seed=run.seed)
        tests.setdefault((run.method, run.dataset), []).append(
            {'seed': run.seed, 'difference': result.difference, 'p_value': result.p_value})
    return tests


def seed_record(run: Run) -> dict[str, Any]:
    """A finished run here, as one seed of its row: test P / R / F1 and per-type F1 in percent, dev F1,
    speed, encoder and epochs (the fields :func:`earlier_records` rebuilds from a written table)."""
    m = json.loads((run.out / 'metrics.json').read_text())
    return {'seed': m['seed'], 'run': shown_path(run.out), 'encoder': m['encoder'], 'epochs': m['epochs'],
            **{key: 100 * m['test'][key] for key in ('precision', 'recall', 'f1')},
            'per_type_f1': {t: 100 * m['test']['per_type'][t]['f1']
                            for t in TYPES if t in m['test']['per_type']},
            'dev_f1': 100 * m['dev']['f1'], 'tweets_per_second': m['tweets_per_second'],
            'train_seconds': m['train_seconds']}


def earlier_records(args: argparse.Namespace) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Per (method, dataset, seed): the seed as results/<name>.json recorded it, with its bootstraps
    against bert-crf (``'test'``) and, for an ablation, against its model's row (``'default_test'``), for
    the runs whose folders are not here: run folders live on the machine that trained them, so a grid
    grown on another machine keeps the rows it cannot retrain rather than dropping them. Empty when the
    table was written for another encoder or epochs."""
    path = args.results_dir / f'{args.name}.json'
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    if any(earlier['grid'].get(key) != getattr(args, key) for key in ('encoder', 'epochs')):
        return {}
    records = {}
    for row in earlier['rows']:
        tests = {t['seed']: t for t in row['vs_bert_crf']}
        default_tests = {t['seed']: t for t in row.get('vs_default', [])}  # tables before it had none
        for i, seed in enumerate(row['seeds']):
            records[(row['method'], row['dataset'], seed)] = {
                'seed': seed, 'run': row['runs'][i], 'model': row['model'], 'sets': row['sets'],
                **row['settings'], **{key: row[key]['values'][i] for key in (
                    'precision', 'recall', 'f1', 'dev_f1', 'tweets_per_second', 'train_seconds')},
                'per_type_f1': {t: s['values'][i] for t, s in row['per_type_f1'].items()},
                'test': tests.get(seed), 'default_test': default_tests.get(seed)}
    return records


def kept_runs(runs: list[Run], args: argparse.Namespace) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The grid's runs not finished here that results/<name>.json recorded with the same model and
    settings (:func:`earlier_records`)."""
    earlier = earlier_records(args)
    kept = {}
    for run in runs:
        record = earlier.get((run.method, run.dataset, run.seed))
        if not run.done and record is not None and (record['model'], record['sets']) == (run.model, run.sets):
            kept[(run.method, run.dataset, run.seed)] = record
    return kept


def summarise(runs: list[Run], args: argparse.Namespace) -> list[dict[str, Any]]:
    kept = kept_runs(runs, args)
    tests = significance(runs, args, set(kept))
    default_tests = significance(runs, args, set(kept), against_default)
    papers = read_papers()
    rows = []
    keys = dict.fromkeys((r.method, r.model, r.dataset) for r in runs)
    for method, model, dataset in keys:
        ours = [r for r in runs if (r.method, r.dataset) == (method, dataset)]
        here = [seed_record(r) for r in ours if r.done]
        earlier = [kept[(method, dataset, r.seed)] for r in ours if (method, dataset, r.seed) in kept]
        records = sorted(here + earlier, key=lambda record: record['seed'])
        if not records:
            continue
        row = {'method': method, 'model': model, 'dataset': dataset,
               'seeds': [record['seed'] for record in records], 'runs': [record['run'] for record in records],
               'sets': ours[0].sets,
               'kept_from_earlier_table': [r.seed for r in ours if (method, dataset, r.seed) in kept]}
        for key in ('precision', 'recall', 'f1'):
            row[key] = spread([record[key] for record in records])
        row['per_type_f1'] = {t: spread([record['per_type_f1'][t] for record in records])
                              for t in TYPES if all(t in record['per_type_f1'] for record in records)}
        for key in ('dev_f1', 'tweets_per_second', 'train_seconds'):
            row[key] = spread([record[key] for record in records])
        row['settings'] = {'encoder': records[0]['encoder'], 'epochs': records[0]['epochs']}
        # a seed's bootstrap from the test labels at hand, else as the earlier table recorded it
        for field_name, found, recorded_as in (('vs_bert_crf', tests, 'test'),
                                               ('vs_default', default_tests, 'default_test')):
            computed = {t['seed']: t for t in found.get((method, dataset), [])}
            recorded = {r['seed']: r[recorded_as] for r in earlier if r.get(recorded_as) is not None}
            row[field_name] = [{**recorded, **computed}[seed] for seed in row['seeds']
                               if seed in computed or seed in recorded]
        row['papers'] = [p for p in papers if p['method'] == method and p['dataset'] == dataset]
        rows.append(row)
    return rows


def mark(tests: list[dict[str, Any]]) -> str:
    """'+2/3': significantly better than the row compared with (bert-crf, or an ablation's model) at 2
    of 3 seeds; '-1/3': worse at 1."""
    if not tests:
        return ''
    better = sum(t['p_value'] < LEVEL and t['difference'] > 0 for t in tests)
    worse = sum(t['p_value'] < LEVEL and t['difference'] < 0 for t in tests)
    parts = [f'+{better}/{len(tests)}'] if better else []
    parts += [f'-{worse}/{len(tests)}'] if worse else []
    return ' '.join(parts) or f'0/{len(tests)}'


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f'# {args.name}', '',
             'Generated by `experiments/reproduce.py` from the run folders listed in '
             f'`results/{args.name}.json`; do not edit by hand.', '',
             'Test scores of the best dev epoch, mean ± sample std over seeds (no ± for one seed; percent, '
             'conlleval span F1). '
             f'"vs bert-crf": seeds at which a paired bootstrap ({args.resamples} resamples over test '
             'tweets) '
             f'finds the difference to bert-crf at p < {LEVEL} (+ better, - worse); "vs default": the same '
             "for an ablation against its model's row (the model's settings without the ablation's). "
             '"paper F1": experiments/papers.yaml (other encoders and epochs: see its sources below).', '',
             '| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    sources = []
    for row in rows:
        per_type = [spread_cell(row['per_type_f1'][t]) if t in row['per_type_f1'] else '' for t in TYPES]
        paper = []
        for p in row['papers']:
            sources.append(p)
            paper.append(f"{p['f1']:.2f} [{len(sources)}]")
        lines.append('| ' + ' | '.join([
            row['method'], row['dataset'], Path(str(row['settings']['encoder'])).name,
            str(row['settings']['epochs']), ' '.join(map(str, row['seeds'])), spread_cell(row['f1']),
            spread_cell(row['precision']), spread_cell(row['recall']), *per_type,
            spread_cell(row['dev_f1']), spread_cell(row['tweets_per_second'], 1),
            spread_cell(row['train_seconds'], 0), mark(row['vs_bert_crf']), mark(row['vs_default']),
            ', '.join(paper)]) + ' |')
    if sources:
        lines += ['', 'Paper numbers:', '']
        lines += [f"{i}. {p['source']}; encoder {p['encoder']}" + (f"; {p['note']}" if p.get('note') else '')
                  for i, p in enumerate(sources, 1)]
    ablations = [row for row in rows if row['sets']]
    if ablations:
        lines += ['', 'Ablations:', '']
        lines += [f"- {row['method']}: {row['model']} with {' '.join(row['sets'])}" for row in ablations]
    compared = [row for row in ablations if row['vs_default']]
    if compared:
        lines += ['', "Before / after: each ablation's test F1 minus its model's at the same seed (paired "
                  'bootstrap p):', '']
        lines += [f"- {row['method']} against {row['model']}, {row['dataset']}: " + ', '.join(
            f"seed {t['seed']} {100 * t['difference']:+.2f} (p {t['p_value']:.3f})"
            for t in row['vs_default']) for row in compared]
    kept = [row for row in rows if row['kept_from_earlier_table']]
    if kept:
        lines += ['', f'Kept from the table results/{args.name}.json held before (their run folders are '
                  'on the machine that trained them, not the one that wrote this table): scores as '
                  f'recorded then, bootstraps from the test labels kept in results/{args.name}{PREDICTIONS}/ '
                  'where they are, else as recorded then:', '']
        lines += [f"- {row['method']} {row['dataset']} seeds "
                  + ' '.join(map(str, row['kept_from_earlier_table'])) for row in kept]
    return '\n'.join(lines) + '\n'


def paper_name(entry: dict[str, Any]) -> str:
    """The paper an entry of papers.yaml comes from: its ``source`` up to the
    file name (``'UMGF paper (umgf_003) Table 2, ...'`` -> ``'UMGF paper'``)."""
    return entry['source'].split(' (')[0]


#: One marker and colour per paper in the plot: a method can have F1s from several papers.
PAPER_STYLES = [('x', 'tab:red'), ('+', 'tab:purple'), ('^', 'tab:orange'), ('s', 'tab:brown')]


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Test F1 per method: one dot per seed, the mean with its std, each paper's
    F1 as a marker of its own, named in the legend."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(paper_name(p) for row in rows for p in row['papers']))
    styles = {name: PAPER_STYLES[i % len(PAPER_STYLES)] for i, name in enumerate(names)}
    datasets = list(dict.fromkeys(row['dataset'] for row in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        chosen = [row for row in rows if row['dataset'] == dataset]
        for x, row in enumerate(chosen):
            ax.scatter([x] * len(row['f1']['values']), row['f1']['values'], color='tab:blue', s=12, alpha=0.6)
            ax.errorbar(x, row['f1']['mean'], yerr=row['f1']['std'], fmt='o', color='tab:blue', capsize=4)
            for p in row['papers']:
                marker, color = styles[paper_name(p)]
                ax.scatter(x, p['f1'], marker=marker, color=color, s=40)
        for name in dict.fromkeys(paper_name(p) for row in chosen for p in row['papers']):
            marker, color = styles[name]
            ax.scatter([], [], marker=marker, color=color, label=name)
        ax.set_xticks(range(len(chosen)), [row['method'] for row in chosen], rotation=30, ha='right')
        ax.set(title=dataset, ylabel='test F1 (%)')
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(loc='upper left', bbox_to_anchor=(1.0, 1.0), fontsize=8)  # beside: never over a dot
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches='tight')
    plt.close(fig)


def write_results(runs: list[Run], args: argparse.Namespace) -> list[dict[str, Any]]:
    store_predictions(runs, args)
    rows = summarise(runs, args)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    base = args.results_dir / args.name
    grid_settings = {key: getattr(args, key) for key in ('models', 'datasets', 'seeds', 'encoder', 'epochs',
                                                          'data_root', 'set', 'ablation', 'resamples')}
    base.with_suffix('.json').write_text(json.dumps({'name': args.name, 'grid': grid_settings, 'rows': rows},
                                                    indent=2, default=str))
    base.with_suffix('.md').write_text(markdown(rows, args))
    if rows:
        plot(rows, base.with_suffix('.png'))
    return rows


# -- finished runs on other test sets --------------------------------------------------------


class CrossDomainError(ValueError):
    """A cross-domain score that would not compare like with like: a model scored on a dataset
    whose label set is not its own, or a target grid run trained otherwise than this grid's runs."""


def per_dataset(template: str | None, dataset: str) -> str | None:
    """A per-dataset path option ('{dataset}' filled in)."""
    return None if template is None else template.format(dataset=Path(dataset).name)


def evaluation_settings(metrics: dict[str, Any]) -> tuple[str, int]:
    """The span scheme and evaluation batch size a run was scored with."""
    train = metrics.get('settings', {}).get('train', {})
    return train.get('scheme', 'conlleval'), train.get('eval_batch_size', 64)


def check_cross_domain_labels(runs: list[Run], args: argparse.Namespace) -> tuple[str, ...]:
    """The one label set every source and target shares (:class:`CrossDomainError` otherwise)."""
    from graphmner.data.datasets import dataset_labels

    datasets = list(dict.fromkeys([r.dataset for r in runs] + args.cross_domain))
    label_sets = {dataset: tuple(dataset_labels(dataset, args.data_root)) for dataset in datasets}
    first = datasets[0]
    for dataset in datasets[1:]:
        if label_sets[dataset] != label_sets[first]:
            raise CrossDomainError(f"{first} tags {' '.join(label_sets[first])} but {dataset} tags "
                                   f"{' '.join(label_sets[dataset])}: cross-domain scores need one label set")
    return label_sets[first]


def setting_differences(run: Run, other: Run) -> list[str]:
    """The grid-wide settings two finished runs differ in: encoder, epochs, and whether they read
    images and captions. Their config settings may differ: each method has its own per dataset
    (ITA's temperature is 2 on Twitter-2017 and 4 on Twitter-2015)."""
    a, b = (json.loads((r.out / 'metrics.json').read_text()) for r in (run, other))
    differences = [key for key in ('encoder', 'epochs') if a.get(key) != b.get(key)]
    return differences + [f'{key} (given or not)' for key in ('image_root', 'captions')
                          if (a.get(key) is None) != (b.get(key) is None)]


def trained_on_targets(runs: list[Run], args: argparse.Namespace) -> list[Run]:
    """The finished runs that give the "trained on target" column: this grid's runs on a target, and
    those of ``--target-grid`` (same methods and seeds), each checked against a run of its method here
    (:class:`CrossDomainError` when its grid-wide settings differ)."""
    found = [r for r in runs if r.dataset in args.cross_domain and r.done]
    if args.target_grid:
        found += [r for r in grid(argparse.Namespace(**{**vars(args), 'name': args.target_grid,
                                                        'datasets': args.cross_domain})) if r.done]
    for run in found:
        source = next((r for r in runs if r.method == run.method and r.done and r.dataset != run.dataset),
                      None)
        differences = [] if source is None else setting_differences(source, run)
        if differences:
            raise CrossDomainError(f"{shown_path(run.out)} was trained with another {', '.join(differences)} "
                                   f'than {shown_path(source.out)}: a target grid needs the same settings')
    return found


def cross_domain(runs: list[Run], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per (method, source, target): the test scores on ``target`` of the runs trained on
    ``source``, seed by seed, their in-domain test scores, and those of the runs trained on ``target``."""
    from graphmner.models import load
    from graphmner.train.experiment import evaluate_graphs, graphs_as_trained

    on_targets = trained_on_targets(runs, args)
    scores: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        targets = [t for t in args.cross_domain if t != run.dataset]
        if not run.done or not targets:
            continue
        metrics = json.loads((run.out / 'metrics.json').read_text())
        scheme, batch_size = evaluation_settings(metrics)
        model = load(run.out / 'best.pt')
        for target in targets:
            graphs = graphs_as_trained(model, target, 'test', args.data_root,
                                       per_dataset(args.image_root, target),
                                       per_dataset(args.captions, target), args.cache_dir)
            test = evaluate_graphs(model, graphs, scheme, batch_size)
            print(f"{run.method}: {run.dataset} -> {target}, seed {run.seed}: F1 {100 * test['f1']:.2f} "
                  f"(in-domain {100 * metrics['test']['f1']:.2f})", flush=True)
            scores.setdefault((run.method, run.dataset, target), []).append(
                {'seed': run.seed, 'run': shown_path(run.out), 'test': test, 'in_domain': metrics['test']})
    rows = []
    for (method, source, target), results in scores.items():
        trained_on_target = [json.loads((r.out / 'metrics.json').read_text())['test']['f1']
                             for r in on_targets if (r.method, r.dataset) == (method, target)]
        rows.append({
            'method': method, 'source': source, 'target': target, 'seeds': [r['seed'] for r in results],
            'runs': [r['run'] for r in results],
            **{key: spread([100 * r['test'][key] for r in results]) for key in ('precision', 'recall', 'f1')},
            'in_domain_f1': spread([100 * r['in_domain']['f1'] for r in results]),
            'target_in_domain_f1': spread([100 * f1 for f1 in trained_on_target]) if trained_on_target
            else None,
            'per_seed': results})
    return rows


def cross_domain_markdown(rows: list[dict[str, Any]], labels: tuple[str, ...], args: argparse.Namespace
                          ) -> str:
    columns = ('method', 'train on', 'test on', 'seeds', 'test F1', 'P', 'R', 'in-domain F1', 'change',
               'trained on target F1')
    lines = [f'# {args.name}: cross-domain', '',
             'Generated by `experiments/reproduce.py --cross-domain` from the run folders listed in '
             f'`results/{args.name}-cross-domain.json`; do not edit by hand.', '',
             "Each run's best dev checkpoint, trained on one dataset, tested on the other's test split "
             "without retraining (UMGF Table 4's setting); its test graphs built with the run's own graph "
             'options. Mean ± sample std over seeds (no ± for one seed; percent, conlleval span F1). '
             '"in-domain F1": the same '
             'runs on their own test split; "trained on target F1": runs of the method trained on the '
             + (f'target, seeds {" ".join(map(str, args.seeds))}, from runs/{args.target_grid}/ (same '
                'encoder and epochs)' if args.target_grid else 'target, where this grid has them')
             + '. Every dataset here tags the same labels: '
             f"{' '.join(labels)}.", '',
             '| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        change = row['f1']['mean'] - row['in_domain_f1']['mean']
        lines.append('| ' + ' | '.join([
            row['method'], Path(row['source']).name, Path(row['target']).name,
            ' '.join(map(str, row['seeds'])),
            spread_cell(row['f1']), spread_cell(row['precision']), spread_cell(row['recall']),
            spread_cell(row['in_domain_f1']),
            f'{change:+.2f}', spread_cell(row['target_in_domain_f1'])]) + ' |')
    return '\n'.join(lines) + '\n'


def report_unfinished(runs: list[Run], rows: list[dict[str, Any]] = ()) -> None:
    """Names the grid's runs that a table leaves out because they have not finished, and those it keeps
    from the table written before (``rows``' ``kept_from_earlier_table``)."""
    kept = {(row['method'], row['dataset'], seed)
            for row in rows for seed in row.get('kept_from_earlier_table', ())}
    unfinished = [run for run in runs if not run.done]
    for word, chosen in (('kept from the earlier table, not trained here', True),
                         ('not finished, left out', False)):
        named = [shown_path(run.out) for run in unfinished
                 if ((run.method, run.dataset, run.seed) in kept) == chosen]
        if named:
            print(f"{word}: {', '.join(named)}")


def write_cross_domain(runs: list[Run], args: argparse.Namespace) -> list[dict[str, Any]]:
    labels = check_cross_domain_labels(runs, args)
    rows = cross_domain(runs, args)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    base = args.results_dir / f'{args.name}-cross-domain'
    settings = {key: getattr(args, key) for key in ('models', 'datasets', 'seeds', 'cross_domain',
                                                    'target_grid', 'data_root', 'image_root', 'captions')}
    base.with_suffix('.json').write_text(json.dumps(
        {'name': args.name, 'grid': settings, 'labels': labels, 'rows': rows}, indent=2, default=str))
    base.with_suffix('.md').write_text(cross_domain_markdown(rows, labels, args))
    report_unfinished(runs)
    print(f'wrote {base}.md, .json ({len(rows)} rows)')
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    offline_environment()
    quiet_third_parties()
    args = parse_args(argv)
    return run_guarded('reproduce.py', lambda: reproduce(args))


def reproduce(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = grid(args)
    if args.cross_domain:
        try:
            return write_cross_domain(runs, args)
        except CrossDomainError as error:
            print(f'reproduce.py: {error}', file=sys.stderr)
            raise SystemExit(2) from None
    if args.dry_run:
        dry_run(runs, args)
        return []
    try:
        table_args = table_grid(args)
    except GridError as error:
        print(f'reproduce.py: {error}', file=sys.stderr)
        raise SystemExit(2) from None
    if not args.table_only:
        train_missing(runs, args)
    table_runs = grid(table_args)
    rows = write_results(table_runs, table_args)
    report_unfinished(table_runs, rows)
    print(f"wrote {args.results_dir / args.name}.md, .json, .png ({len(rows)} rows)")
    return rows


if __name__ == '__main__':
    main()
