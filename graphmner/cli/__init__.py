"""The ``graphmner`` command: ``train``, ``predict``, ``export``, ``inspect``, ``export-model``.

    graphmner train --model umgf                              # as experiments/run.py
    graphmner predict runs/umgf-demo-seed1/best.pt --text "Barack Obama visits Paris"
    graphmner export --dataset demo --count 2 --out /tmp/graphs
    graphmner inspect --dataset demo --split train --index 0
    graphmner export-model runs/umgf-demo-seed1/best.pt models/umgf-demo  # a model folder

Every user mistake (a bad flag, file, checkpoint or value) is one line on
stderr and exit status 2. Heavy libraries are imported only after the
arguments are parsed, so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

#: The registered model names (kept here so that --help needs no torch import;
#: a test checks them against graphmner.models.available()).
MODEL_NAMES = ('bert-crf', 'gmf', 'ita', 'maf', 'umgf')


class UsageError(ValueError):
    """A user mistake the command reports as one line, exit status 2."""


def fail(command: str, message: str) -> None:
    """Prints ``graphmner <command>: error: <message>`` as one line and exits with 2."""
    print(f"{command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


def run_guarded(command: str, body: Callable[[], object]) -> object:
    """Runs ``body``; the errors that mean a user mistake become one line and exit 2."""
    from ..io import CheckpointError
    from ..train.settings import SettingsError

    try:
        return body()
    except (UsageError, SettingsError, CheckpointError) as error:
        fail(command, str(error))
    except ImportError as error:
        fail(command, f'a needed package is missing: {error}')
    return None


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (no usage block), exit 2."""

    def error(self, message: str) -> None:
        fail(self.prog, message)


def offline_environment() -> None:
    """Nothing downloads at run time: the offline switches of the hub and YOLO
    are on unless the user set them."""
    os.environ.setdefault('YOLO_OFFLINE', 'true')


def quiet_third_parties(verbose: bool = False) -> None:
    """Silences the warnings other libraries print on every run (torch_geometric's
    use of the deprecated ``torch.jit.script``, on its import) unless ``verbose``
    (``--verbose``); called before anything imports torch_geometric, the checks
    of the input included, and by the experiment scripts before their imports."""
    import warnings

    if verbose:
        return
    warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning)


def main(argv: list[str] | None = None) -> object:
    from . import export, export_model, inspect, predict, train

    parser = Parser(prog='graphmner', description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, module in (('train', train), ('predict', predict), ('export', export), ('inspect', inspect),
                         ('export-model', export_model)):
        sub = commands.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    offline_environment()
    quiet_third_parties(getattr(args, 'verbose', False))
    return args.run(args)


def console() -> int:
    """The ``graphmner`` program: exit status 0 on success (``main`` returns the
    command's result, which ``sys.exit`` would print and turn into status 1)."""
    main()
    return 0
