"""Renders README's "Results measured here" block from results/*.json, between its markers.

    python experiments/results_table.py            # rewrite the block in README.md
    python experiments/results_table.py --check    # exit 1 if README.md's block is not the generated one

The block holds four tables, each only when results/ has what it shows: test F1 per method and dataset
(results/<grid>.json of experiments/reproduce.py; one row per method, encoder and epochs, so that
two one-dataset grids of the same setting share a row, its seeds per dataset where they differ),
before / after (each ablation against its model's row, with the per-seed paired bootstraps),
cross-domain F1 (results/<grid>-cross-domain.json) and F1 with all, half and none of the images usable
(results/<name>-missing-images.json of experiments/missing_images.py). Every number is read from those
files, which list the run folders whose metrics.json they summarise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # reproduce.py, a script beside this one

import reproduce

REPOSITORY = reproduce.REPOSITORY
BEGIN, END = '<!-- results:begin -->', '<!-- results:end -->'
CROSS, MISSING = '-cross-domain', '-missing-images'


class BlockError(ValueError):
    """README has no well-formed results block, or results/ contradicts itself."""


def dataset_title(name: str) -> str:
    """'twitter2017' -> 'Twitter-2017'; a folder dataset by its own name."""
    name = Path(name).name
    return f'Twitter-{name[7:]}' if name.startswith('twitter') and name[7:].isdigit() else name


def significance_mark(tests: list[dict[str, Any]]) -> str:
    """' (+2/3)' (reproduce.py's mark in brackets) where the row has bootstrap tests, else ''."""
    return f' ({reproduce.mark(tests)})' if tests else ''


def read_results(results_dir: Path) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The results files by kind ('grid', 'cross', 'missing'), each as (file name, content), by name."""
    kinds: dict[str, list[tuple[str, dict[str, Any]]]] = {'grid': [], 'cross': [], 'missing': []}
    for path in sorted(results_dir.glob('*.json')):
        kind = 'cross' if path.stem.endswith(CROSS) else 'missing' if path.stem.endswith(MISSING) else 'grid'
        kinds[kind].append((path.name, json.loads(path.read_text())))
    return kinds


def sources(files: list[tuple[str, dict[str, Any]]]) -> str:
    return 'From ' + ', '.join(f'`results/{name}`' for name, _ in files) + ':'


def grid_table(files: list[tuple[str, dict[str, Any]]]) -> list[str]:
    cells: dict[tuple, dict[str, str]] = {}
    seeds: dict[tuple, dict[str, str]] = {}
    papers: dict[str, dict[str, float]] = {}
    origin: dict[tuple, str] = {}
    for name, content in files:
        for row in content['rows']:
            key = (row['method'], Path(str(row['settings']['encoder'])).name, row['settings']['epochs'])
            if (*key, row['dataset']) in origin:
                raise BlockError(f"{row['method']} on {row['dataset']} ({key[1]}, {key[2]} epochs) is in "
                                 f"both {origin[(*key, row['dataset'])]} and {name}: remove one")
            origin[(*key, row['dataset'])] = name
            cell = reproduce.spread_cell(row['f1']) + significance_mark(row['vs_bert_crf'])
            cells.setdefault(key, {})[row['dataset']] = cell
            seeds.setdefault(key, {})[row['dataset']] = ' '.join(map(str, row['seeds']))
            for p in row.get('papers', []):
                papers.setdefault(row['method'], {}).setdefault(row['dataset'], p['f1'])
    datasets = list(dict.fromkeys(d for row in cells.values() for d in row))
    columns = ['method', 'encoder', 'epochs', 'seeds', *map(dataset_title, datasets),
               f"paper ({' / '.join(map(dataset_title, datasets))})"]
    lines = ['Test span F1 (percent, conlleval chunking) of the best dev epoch, mean ± sample std over '
             'seeds (no ± for one seed; "seeds" per dataset, as the columns, where they differ); (+k/n): '
             'seeds at which a paired bootstrap over test tweets finds the method better '
             f'than bert-crf at p < {reproduce.LEVEL} (-: worse, 0/n: neither). "paper": '
             '`experiments/papers.yaml` (other encoders, images, more epochs). ' + sources(files),
             '', '| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for key, by_dataset in cells.items():
        method, encoder, epochs = key
        known = papers.get(method, {})
        paper = ' / '.join(f'{known[d]:.2f}' if d in known else '–' for d in datasets)
        seed_sets = [seeds[key].get(d, '–') for d in datasets]
        shown_seeds = seed_sets[0] if len(set(seed_sets)) == 1 else ' / '.join(seed_sets)
        lines.append('| ' + ' | '.join([method, encoder, str(epochs), shown_seeds,
                                        *(by_dataset.get(d, '') for d in datasets), paper]) + ' |')
    return lines


def before_after_table(files: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Each ablation with bootstraps against its model's row (``vs_default``): the model's F1, the
    ablation's, and the per-seed differences with their p; empty when no grid has one."""
    columns = ['change', 'against', 'dataset', 'encoder', 'epochs', 'seeds', 'F1 before', 'F1 after',
               'after - before per seed (p)', 'vs default']
    lines = []
    for _, content in files:
        rows = {(row['method'], row['dataset']): row for row in content['rows']}
        for row in content['rows']:
            default = rows.get((row['model'], row['dataset']))
            if not row.get('vs_default') or default is None:
                continue
            differences = ', '.join(f"{100 * t['difference']:+.2f} ({t['p_value']:.3f})"
                                    for t in row['vs_default'])
            lines.append('| ' + ' | '.join([
                row['method'], row['model'], dataset_title(row['dataset']),
                Path(str(row['settings']['encoder'])).name, str(row['settings']['epochs']),
                ' '.join(map(str, row['seeds'])), reproduce.spread_cell(default['f1']),
                reproduce.spread_cell(row['f1']), differences, reproduce.mark(row['vs_default'])]) + ' |')
    if not lines:
        return []
    return ["Before / after: each ablation (its settings are the grid's ablation list, in the results files) "
            "against its model's row at the same seeds; a paired bootstrap over test tweets per seed, "
            f'(+k/n) where the change is better at p < {reproduce.LEVEL} (-: worse). ' + sources(files),
            '', '| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns), *lines]


def cross_domain_table(files: list[tuple[str, dict[str, Any]]]) -> list[str]:
    columns = ['method', 'train on', 'test on', 'seeds', 'F1', 'in-domain F1', 'trained on target F1']
    lines = ["Cross-domain (UMGF Table 4's setting): each run tested on the other dataset's test split "
             'without retraining, beside the same runs on their own test split and runs trained on the '
             'target. ' + sources(files),
             '', '| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for _, content in files:
        for row in content['rows']:
            target = row['target_in_domain_f1']
            lines.append('| ' + ' | '.join([
                row['method'], dataset_title(row['source']), dataset_title(row['target']),
                ' '.join(map(str, row['seeds'])), reproduce.spread_cell(row['f1']),
                reproduce.spread_cell(row['in_domain_f1']), reproduce.spread_cell(target)]) + ' |')
    return lines


def missing_images_table(files: list[tuple[str, dict[str, Any]]]) -> list[str]:
    lines = ['Test F1 with all, half and none of the test images usable (a dropped image gives the graph '
             'the builder makes for a missing one; the same tweets for every model). ' + sources(files), '']
    fractions = list(dict.fromkeys(point['usable_fraction'] for _, content in files
                                   for row in content['rows'] for point in row['points']))
    columns = ['model', 'test set', 'seed', *(f'{100 * f:.0f} % images' for f in fractions), 'note']
    lines += ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for _, content in files:
        for row in content['rows']:
            f1 = {p['usable_fraction']: f"{100 * p['f1']:.2f}" for p in row['points']}
            lines.append('| ' + ' | '.join([
                row['method'], dataset_title(row['dataset']), '' if row['seed'] is None else str(row['seed']),
                *(f1.get(f, '') for f in fractions), row['note']]) + ' |')
    return lines


def render(results_dir: Path) -> str:
    """The block between the markers (without them)."""
    kinds = read_results(results_dir)
    tables = [table(kinds[kind]) for kind, table in (('grid', grid_table), ('grid', before_after_table),
                                                      ('cross', cross_domain_table),
                                                      ('missing', missing_images_table)) if kinds[kind]]
    tables = [table for table in tables if table]
    if not tables:
        tables = [[f'No results yet: `{results_dir.name}/` holds no table of `experiments/reproduce.py`.']]
    note = ('<!-- generated by `python experiments/results_table.py` from results/*.json; '
            'edit those, not this block -->')
    return '\n'.join([note, ''] + [line for table in tables for line in [*table, '']])


def split_readme(text: str) -> tuple[str, str, str]:
    """(before the block, the block, after it); :class:`BlockError` without exactly one pair of markers."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise BlockError(f'README needs one {BEGIN} line and, below it, one {END} line around the results '
                         f'block (found {text.count(BEGIN)} and {text.count(END)})')
    head, rest = text.split(BEGIN + '\n', 1)
    block, tail = rest.split(END, 1)
    return head + BEGIN + '\n', block, END + tail


def update(readme: Path, results_dir: Path, check: bool = False) -> bool:
    """Whether ``readme``'s block already equals the generated one; unless ``check``, rewrite it."""
    head, block, tail = split_readme(readme.read_text())
    generated = render(results_dir)
    if block != generated and not check:
        readme.write_text(head + generated + tail)
    return block == generated


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--readme', type=Path, default=REPOSITORY / 'README.md')
    p.add_argument('--results-dir', type=Path, default=REPOSITORY / 'results')
    p.add_argument('--check', action='store_true', help='change nothing; exit 1 if the block is stale')
    args = p.parse_args(argv)
    try:
        same = update(args.readme, args.results_dir, check=args.check)
    except BlockError as error:
        print(f'results_table.py: {error}', file=sys.stderr)
        return 2
    if args.check and not same:
        print(f'results_table.py: the results block of {args.readme} is not the one generated from '
              f'{args.results_dir}: run python experiments/results_table.py', file=sys.stderr)
        return 1
    print(f"{args.readme}: results block {'up to date' if same else 'rewritten'}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
