"""What every ``graphmner`` subcommand shares: one-line errors (exit status 2),
the guard that turns user mistakes into them, the parser, the offline switches
and the model names. Apart from :mod:`graphmner.cli` itself, so that the
subcommands it loads import these without importing it back.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable

from ..models.names import MODEL_NAMES  # noqa: F401  (the registry's names, without torch, for --help)


class UsageError(ValueError):
    """A user mistake the command reports as one line, exit status 2."""


def fail(command: str, message: str) -> None:
    """Prints ``graphmner <command>: error: <message>`` as one line and exits with 2."""
    print(f"{command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


#: The exit status of a command stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130


def run_guarded(command: str, body: Callable[[], object]) -> object:
    """Runs ``body``; the errors that mean a user mistake become one line and
    exit 2; Ctrl-C is one line (what training kept, the command that resumes)
    and exit 130."""
    from ..io import CheckpointError
    from ..train.settings import SettingsError

    try:
        return body()
    except (UsageError, SettingsError, CheckpointError) as error:
        fail(command, str(error))
    except ImportError as error:
        fail(command, f'a needed package is missing: {error}')
    except KeyboardInterrupt as error:
        interrupted(command, error)
    return None


def interrupted(command: str, error: KeyboardInterrupt) -> None:
    """Prints ``<command>: <what the interrupt kept>`` as one line and exits
    with 130; a training interrupt (``kept_epoch``) adds the command line that
    resumes. Under torchrun the first process alone prints it."""
    message = ' '.join(str(error).split()) or 'interrupted'
    if hasattr(error, 'kept_epoch'):  # a TrainingInterrupted (its module imports torch: not here)
        message += f'; continue with: {resume_command(command)}'
    if os.environ.get('RANK', '0') == '0':
        print(f'{command}: {message}', file=sys.stderr)
    raise SystemExit(INTERRUPTED)


def resume_command(command: str) -> str:
    """This process's command line with ``--resume``: ``graphmner train ...``
    for the command, ``python <script> ...`` for an experiment script."""
    argv = sys.argv[1:] + ([] if '--resume' in sys.argv else ['--resume'])
    program = ['graphmner'] if command.startswith('graphmner') else ['python', sys.argv[0]]
    return shlex.join(program + argv)


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
    use of the deprecated ``torch.jit.script``, on its import, which importing
    graphmner already hides) unless ``verbose`` (``--verbose``: shown again);
    called before anything imports torch_geometric, the checks of the input
    included, and by the experiment scripts before their imports."""
    import warnings

    from .. import TORCH_JIT_WARNING

    warnings.filterwarnings('default' if verbose else 'ignore', message=TORCH_JIT_WARNING,
                            category=FutureWarning)
