"""What every ``graphmner`` subcommand shares: one-line errors (exit status 2),
the guard that turns user mistakes into them, the parser, the offline switches
and the model names. Apart from :mod:`graphmner.cli` itself, so that the
subcommands it loads import these without importing it back.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from ..models.names import MODEL_NAMES  # noqa: F401  (the registry's names, without torch, for --help)


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
