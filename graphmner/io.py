"""Writing files so that an interrupted run never leaves a truncated one behind."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, unreadable, truncated, or
    written by another layout. The message names the file and what to do; the
    command line shows it as one line (exit status 2)."""


def load_failure(error: Exception) -> str:
    """Why :func:`torch.load` could not read a file, as one short, whole phrase.

    torch's own messages run to several sentences (the weights-only one opens
    with the history of a default), so they are cut at a sentence, never
    mid-word; a file that is neither a zip archive nor a pickle (text, say)
    surfaces from torch as a bare ``KeyError`` of a byte value, and an empty
    one as an ``EOFError`` without a message.
    """
    text = str(error)
    if isinstance(error, EOFError):
        return 'it ends before any data'
    if isinstance(error, KeyError) or not text:
        return 'not a torch file: neither a zip archive nor a pickle'
    if isinstance(error, OSError) and error.filename is None:  # the zip reader seeking past a cut end
        return f'its zip archive is cut off or damaged ({error.strerror or text})'
    if 'WeightsUnpickler error:' in text:  # a pickle, but of more than tensors and plain values
        detail = text.split('WeightsUnpickler error:', 1)[1].strip().split('\n')[0].strip()
        return f'not a weights-only torch file ({detail})'
    first = text.strip().splitlines()[0]
    return first.split('. ')[0].rstrip('.')


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` with every way it can fail on a
    user's file turned into a :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at '{path}'" + (' (it is a folder)' if path.is_dir() else ''))
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, pickle, foreign file: all mean "not usable"
        raise CheckpointError(f"'{path}' is not a readable checkpoint ({load_failure(error)}): it may be "
                              'truncated or not a graphmner file') from None


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Calls ``write`` on a temporary file beside ``path``, then renames it
    over ``path`` (:func:`os.replace` is atomic within one file system, hence
    beside); on any error the temporary file is removed and ``path`` is left
    as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        # mkstemp makes the file private (0600); the result gets the mode open() would give it
        os.chmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, 'wb') as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask (reading it means setting it: set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 ``text`` through :func:`atomic_write`."""
    data = text.encode('utf-8')
    atomic_write(path, lambda f: f.write(data))


def remove_partial_writes(folder: str | os.PathLike) -> list[Path]:
    """Deletes the temporary files that :func:`atomic_write` left in ``folder``
    when its process was killed mid-write (SIGKILL, power loss: no ``except``
    runs), and returns their paths. Only for a folder that one process writes
    at a time (a run folder): another writer's file in progress would go too."""
    removed = []
    for tmp in Path(folder).glob('.*.tmp'):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
