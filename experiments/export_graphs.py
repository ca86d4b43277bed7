"""Export tweet graphs for outside viewers: the ``graphmner export`` command.

    python experiments/export_graphs.py --dataset demo --count 2 --out graphs/gallery

``python experiments/export_graphs.py --help`` lists every flag (graphmner/cli/export.py).
"""
import os
import sys
from pathlib import Path

os.environ.setdefault('YOLO_OFFLINE', 'true')
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphmner.cli.export import FORMATS, main, parse_args, with_fake_visual

__all__ = ['FORMATS', 'main', 'parse_args', 'with_fake_visual']

if __name__ == '__main__':
    main()
