"""Train and evaluate one method on one dataset: the ``graphmner train`` command.

    python experiments/run.py --model umgf                       # demo data, offline
    python experiments/run.py --model bert-crf --dataset twitter2017 \\
        --data-root ../shared/data --encoder ../shared/models/all-MiniLM-L6-v2 --epochs 3 --seed 1

``python experiments/run.py --help`` lists every flag (graphmner/cli/train.py).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphmner.cli.train import load_settings, main, parse_args

__all__ = ['load_settings', 'main', 'parse_args']

if __name__ == '__main__':
    main()
