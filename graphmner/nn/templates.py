r"""PyG compiles each :class:`~torch_geometric.nn.MessagePassing` class's
``propagate`` (and ``edge_updater``) from a Jinja template into a ``.py`` file
in the temporary folder (``torch_geometric.template.module_from_template``,
written with ``delete=False``) and never removes it, so every process left one
``<module>_<Class>_propagate_<random>.py`` per class in ``/tmp``. The module is
imported by the time the layer exists; :func:`drop_generated_sources` then
deletes its file (only tracebacks through ``propagate`` lose their source line).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from torch_geometric.nn import MessagePassing


def drop_generated_sources(layer: MessagePassing) -> None:
    """Deletes the temporary source files PyG generated for ``layer``'s class.

    Args:
        layer (MessagePassing): a constructed layer (its templates are loaded).
    """
    prefix = f'{type(layer).__module__}_{type(layer).__name__}'
    temporary = Path(tempfile.gettempdir()).resolve()
    for name in (f'{prefix}_propagate', f'{prefix}_edge_updater'):
        source = getattr(sys.modules.get(name), '__file__', None)
        if source and Path(source).name.startswith(f'{name}_') and Path(source).resolve().parent == temporary:
            Path(source).unlink(missing_ok=True)
