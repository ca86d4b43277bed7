"""Cell geometry shared by the grid-based visual backends: boxes of grid cells
in normalised xyxy coordinates."""
from __future__ import annotations

import torch
from torch import Tensor


def even_edges(n: int) -> Tensor:
    """Fractional start/end of ``n`` equal cells: ``[n, 2]``."""
    i = torch.arange(n, dtype=torch.float32)
    return torch.stack([i / n, (i + 1) / n], dim=1)


def adaptive_edges(n: int, out: int) -> Tensor:
    """Fractional windows of ``adaptive_avg_pool`` from ``n`` to ``out``
    cells (they overlap when ``out`` does not divide ``n``): ``[out, 2]``.
    """
    i = torch.arange(out)
    start = torch.div(i * n, out, rounding_mode='floor')
    end = torch.div((i + 1) * n + out - 1, out, rounding_mode='floor')
    return torch.stack([start, end], dim=1).float() / n


def cells(rows: Tensor, cols: Tensor) -> Tensor:
    """Row-major xyxy boxes of a grid from its row and column edges ``[n, 2]``: ``[R*C, 4]``."""
    y = rows.repeat_interleave(cols.size(0), dim=0)
    x = cols.repeat(rows.size(0), 1)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def to_image_coords(boxes: Tensor, window: Tensor) -> Tensor:
    """Maps boxes from the coordinates of a crop ``window`` (xyxy) into the original image's."""
    x0, y0, x1, y1 = window.tolist()
    scale = boxes.new_tensor([x1 - x0, y1 - y0, x1 - x0, y1 - y0])
    offset = boxes.new_tensor([x0, y0, x0, y0])
    return (boxes * scale + offset).clamp_(0.0, 1.0)
