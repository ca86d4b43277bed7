"""Train and evaluate one method on one dataset: the ``graphmner train`` command.

    python experiments/run.py --model umgf                       # demo data, offline
    python experiments/run.py --model bert-crf --dataset twitter2017 \\
        --data-root ../shared/data --encoder ../shared/models/all-MiniLM-L6-v2 --epochs 3 --seed 1

``python experiments/run.py --help`` lists every flag (graphmner/cli/train.py); the command parses
them into a run spec of the experiment API (graphmner/train/experiment.py), validates and runs it.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphmner.cli.train import main, parse_args, spec_from_args

__all__ = ['main', 'parse_args', 'spec_from_args']

if __name__ == '__main__':
    main()
