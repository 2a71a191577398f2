"""Windows of cells gathered into whole output blocks, each handed to GDAL once, complete.

The engine releases blended cells in windows that follow its tiles (a band of tile rows' height, a
chunk of tile columns' width), which do not fall on the GeoTIFF's block grid. Written as they come, a
window that covers part of a block makes GDAL read that block back, decompress it, change it and
compress it again when it leaves GDAL's block cache, once per window that touches it: with many
float bands that was most of a run's time, and the file grew with every rewrite. The assembler
instead writes the blocks a window covers whole straight through, and keeps the others in memory
until their last cells arrive, then writes them in one piece. Windows come band by band, left to
right, so what is held is about one row of blocks across the raster (the block height is chosen to
keep that small, see :mod:`.block_layout`) and the blocks on the current chunk's right edge.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import numpy as np

# Receives (first row, first column, cells (count, h, w)): a window made of whole blocks (blocks at
# the raster's right and bottom edges end at the edge).
BlockWriter = Callable[[int, int, np.ndarray], None]


class _PendingBlock:
    """A block some of whose cells have arrived: those cells only, as the parts they came in.

    A block waiting across a band's boundary holds about half its rows until the next band
    brings the rest; a whole row of such blocks spans the raster, so storing just what arrived
    (not the whole block, filled) halves the part of the writer's memory that grows with the
    raster's width. The block is put together once, when it is written.
    """

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self.parts: List[Tuple[Tuple[slice, slice], np.ndarray]] = []
        self.written = np.zeros((height, width), dtype=bool)
        self.missing = height * width

    def assemble(self, count: int, dtype: str, fill: float) -> np.ndarray:
        cells = np.full((count, self.height, self.width), fill, dtype=dtype)
        for place, part in self.parts:
            cells[(slice(None), *place)] = part
        return cells


class BlockAssembler:
    """Gathers windows of a ``width`` x ``height`` raster into whole blocks for ``write``.

    Args:
        width, height: raster size in cells.
        count, dtype: bands and data type of the cells.
        fill: value of cells never written (the output's nodata).
        block_width, block_height: the block grid.
        write: called once per block (or per rectangle of whole blocks).
    """

    def __init__(
        self,
        width: int,
        height: int,
        count: int,
        dtype: str,
        fill: float,
        block_width: int,
        block_height: int,
        write: BlockWriter,
    ):
        self.width, self.height = width, height
        self.count, self.dtype, self.fill = count, dtype, fill
        self.block_width, self.block_height = block_width, block_height
        self.write = write
        self.pending: Dict[Tuple[int, int], _PendingBlock] = {}
        # Blocks already handed out, one flag each: a later cell for one is a second write.
        self.done = np.zeros((-(-height // block_height), -(-width // block_width)), dtype=bool)

    def add(self, row: int, col: int, cells: np.ndarray) -> None:
        """Take ``(count, h, w)`` cells whose top-left cell is at (``row``, ``col``).

        Raises:
            ValueError: some of the cells were given before (every cell is written once).
        """
        _, h, w = cells.shape
        bh, bw = self.block_height, self.block_width
        # Blocks the window covers whole (the raster's edge counts as a block's end).
        full_rows = self._whole_blocks(row, h, bh, self.height)
        full_cols = self._whole_blocks(col, w, bw, self.width)
        if full_rows[0] < full_rows[1] and full_cols[0] < full_cols[1]:
            top, bottom = full_rows[0] * bh, min(full_rows[1] * bh, self.height)
            left, right = full_cols[0] * bw, min(full_cols[1] * bw, self.width)
            whole = (slice(*full_rows), slice(*full_cols))
            if self.done[whole].any() or any(
                full_rows[0] <= key[0] < full_rows[1] and full_cols[0] <= key[1] < full_cols[1]
                for key in self.pending
            ):
                raise ValueError("cells of a block were written twice")
            self.write(top, left, cells[:, top - row : bottom - row, left - col : right - col])
            self.done[whole] = True
        else:
            full_rows = full_cols = (0, 0)
        for block_row in range(row // bh, (row + h - 1) // bh + 1):
            for block_col in range(col // bw, (col + w - 1) // bw + 1):
                if (
                    full_rows[0] <= block_row < full_rows[1]
                    and full_cols[0] <= block_col < full_cols[1]
                ):
                    continue
                self._add_part(block_row, block_col, row, col, cells)

    def flush(self) -> None:
        """Write the blocks still waiting for cells, their missing cells as ``fill``."""
        for key in sorted(self.pending):
            self._write_block(key, self.pending.pop(key))

    @staticmethod
    def _whole_blocks(start: int, length: int, block: int, size: int) -> Tuple[int, int]:
        """Block indexes ``[first, stop)`` that ``[start, start + length)`` covers whole."""
        first = -(-start // block)
        end = start + length
        stop = -(-end // block) if end >= size else end // block
        return first, max(first, stop)

    def _add_part(self, block_row: int, block_col: int, row: int, col: int, cells: np.ndarray):
        top, left = block_row * self.block_height, block_col * self.block_width
        height = min(self.block_height, self.height - top)
        width = min(self.block_width, self.width - left)
        key = (block_row, block_col)
        if self.done[key]:
            raise ValueError(f"cells of block {key} were written twice")
        block = self.pending.get(key)
        if block is None:
            block = self.pending[key] = _PendingBlock(height, width)
        # The part of the window inside this block, in block and in window coordinates.
        r0, r1 = max(row, top), min(row + cells.shape[1], top + height)
        c0, c1 = max(col, left), min(col + cells.shape[2], left + width)
        here = (slice(r0 - top, r1 - top), slice(c0 - left, c1 - left))
        if block.written[here].any():
            raise ValueError(f"cells of block {key} were written twice")
        # A copy: the window is a view into the blend buffer, valid only during the call.
        part = cells[:, r0 - row : r1 - row, c0 - col : c1 - col].astype(self.dtype, copy=True)
        block.parts.append((here, part))
        block.written[here] = True
        block.missing -= (r1 - r0) * (c1 - c0)
        if block.missing == 0:
            self._write_block(key, self.pending.pop(key))

    def _write_block(self, key: Tuple[int, int], block: _PendingBlock) -> None:
        self.done[key] = True
        cells = block.assemble(self.count, self.dtype, self.fill)
        self.write(key[0] * self.block_height, key[1] * self.block_width, cells)
