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


#: ``scale_grid`` value for stage maps kept at their own resolution (no pooling):
#: the ``scale`` nodes are then the packed cells of :func:`pack_cells`.
NATIVE_GRID = 0


def pack_cells(fmap: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """A stage's whole ``[B, C_l, H, W]`` map as rows of ``width`` values:
    ``k = width / C_l`` consecutive cells of one map row per node (row-major,
    channels last; ``k = 1`` when the stage is ``width`` wide), with the box of
    their strip in crop coordinates. What the ``scale`` nodes hold at
    ``scale_grid=0``; :func:`unpack_cells` inverts it.

    Returns:
        (Tensor, Tensor): rows ``[B, H * W / k, width]`` and boxes ``[H * W / k, 4]``.
    """
    B, C, H, W = fmap.shape
    if width % C or W % (width // C):
        raise ValueError(f'a {C}-channel map {H}x{W} does not pack into rows of {width}: the width must be '
                         f'a multiple of the channels and the map width a multiple of their ratio')
    k = width // C
    rows = fmap.permute(0, 2, 3, 1).reshape(B, H * W // k, width)
    strips = cells(even_edges(H), even_edges(W)).view(H * W // k, k, 4)
    boxes = torch.cat([strips[:, 0, :2], strips[:, -1, 2:]], dim=1)
    return rows, boxes


def unpack_cells(rows: Tensor, channels: int) -> Tensor:
    """The square maps ``[N, C_l, S, S]`` of :func:`pack_cells`'s rows
    ``[N, R, width]`` of ``channels``-wide stages."""
    N, R, width = rows.shape
    side = round((R * width // channels) ** 0.5)
    if side * side * channels != R * width:
        raise ValueError(f'{R} rows of {width} values are no square map of {channels} channels')
    return rows.reshape(N, side, side, channels).permute(0, 3, 1, 2)
