"""``python -m graphmner``: the graphmner command."""
import sys

from .cli import console

sys.exit(console())
