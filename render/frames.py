"""Labelled frame layouts: a grid of tiles with column headers, row names and a title."""

from __future__ import annotations

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SCALE = 0.4
_INK = (30, 30, 30)


def _text_strip(width: int, height: int, text: str, align: str = "center") -> np.ndarray:
    strip = np.full((height, width, 3), 255, np.uint8)
    if not text:
        return strip
    # Shrink long labels to fit instead of cutting them off.
    scale = _SCALE
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    if tw > width - 4:
        scale = _SCALE * (width - 4) / tw
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    x = (width - tw) // 2 if align == "center" else 4
    y = (height + th) // 2
    cv2.putText(strip, text, (x, y), _FONT, scale, _INK, 1, cv2.LINE_AA)
    return strip


def labelled_grid(
    rows: list[list[np.ndarray]],
    col_labels: list[str],
    row_labels: list[str],
    title: str = "",
    pad: int = 2,
    label_height: int = 16,
    row_label_width: int = 64,
) -> np.ndarray:
    """Tiles ``rows[r][c]`` (``[h, w, 3]`` uint8, one size) -> one labelled image: the title
    on top, column labels above, row labels on the left, white gaps of ``pad``."""
    h, w = rows[0][0].shape[:2]
    ncols = len(rows[0])
    if len(col_labels) != ncols or len(row_labels) != len(rows):
        raise ValueError("one label per column and per row")
    width = row_label_width + ncols * (w + pad)
    parts = []
    if title:
        parts.append(_text_strip(width, label_height + 2, title, align="left"))
    header = [_text_strip(row_label_width, label_height, "")]
    for label in col_labels:
        header += [_text_strip(w, label_height, label), _text_strip(pad, label_height, "")]
    parts.append(np.concatenate(header, axis=1))
    for label, tiles in zip(row_labels, rows, strict=True):
        line = [_text_strip(row_label_width, h, label, align="left")]
        for tile in tiles:
            line += [tile, np.full((h, pad, 3), 255, np.uint8)]
        parts.append(np.concatenate(line, axis=1))
        parts.append(np.full((pad, width, 3), 255, np.uint8))
    return np.concatenate(parts, axis=0)
