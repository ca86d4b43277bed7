"""The ``graphmner`` command: ``train``, ``predict``, ``explain``, ``export``, ``inspect``,
``export-model``.

    graphmner train --model umgf                              # as experiments/run.py
    graphmner predict runs/umgf-demo-seed1/best.pt --text "Barack Obama visits Paris"
    graphmner explain runs/maf-demo-seed1/best.pt --text "Rob after a fish dinner" --output why.html
    graphmner export --dataset demo --count 2 --out /tmp/graphs
    graphmner inspect --dataset demo --split train --index 0
    graphmner export-model runs/umgf-demo-seed1/best.pt models/umgf-demo  # a model folder

Every user mistake (a bad flag, file, checkpoint or value) is one line on
stderr and exit status 2. Heavy libraries are imported only after the
arguments are parsed, so ``--help`` is instant.
"""
from __future__ import annotations

import argparse

from .common import (
    MODEL_NAMES,
    Parser,
    UsageError,
    fail,
    offline_environment,
    quiet_third_parties,
    run_guarded,
)


def main(argv: list[str] | None = None) -> object:
    from . import explain, export, export_model, inspect, predict, train

    parser = Parser(prog='graphmner', description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, module in (('train', train), ('predict', predict), ('explain', explain), ('export', export),
                         ('inspect', inspect), ('export-model', export_model)):
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


__all__ = ['MODEL_NAMES', 'Parser', 'UsageError', 'console', 'fail', 'main',
           'offline_environment', 'quiet_third_parties', 'run_guarded']
