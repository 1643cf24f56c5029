"""Pictures of few-shot episodes: supports with masks, query with ground truth and prediction."""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

SUPPORT_COLOUR = (0, 200, 0)
GT_COLOUR = (0, 120, 255)
PRED_COLOUR = (255, 220, 0)


def overlay(img: Tensor, mask: Optional[Tensor], colour: Tuple[int, int, int], alpha: float = 0.5) -> np.ndarray:
    """[3, H, W] uint8 RGB image with a [H, W] binary mask blended in ``colour`` -> [H, W, 3] uint8."""
    out = img.permute(1, 2, 0).cpu().numpy().astype(np.float32)
    if mask is not None:
        m = (mask.cpu().numpy() == 1)[..., None]
        out = np.where(m, (1 - alpha) * out + alpha * np.asarray(colour, np.float32), out)
    return out.round().clip(0, 255).astype(np.uint8)


def episode_panel(supports: Tensor, support_masks: Tensor, query: Tensor, query_mask: Optional[Tensor],
                  pred: Tensor, gap: int = 4, alpha: float = 0.5) -> np.ndarray:
    """One row: K supports with their masks | query with ground truth | query with prediction.

    Args:
        supports: [K, 3, H, W] uint8 RGB.
        support_masks: [K, H, W] binary.
        query: [3, H, W] uint8 RGB.
        query_mask: [H, W] binary ground truth, or None (its tile is then the bare query).
        pred: [h, w] binary prediction (resized to the query by nearest if needed).

    Returns:
        [H, W_total, 3] uint8 RGB picture.
    """
    size = query.shape[-2:]
    if pred.shape != size:
        pred = torch.nn.functional.interpolate(pred[None, None].float(), size=size, mode='nearest')[0, 0]
    tiles = [overlay(s, m, SUPPORT_COLOUR, alpha) for s, m in zip(supports, support_masks)]
    tiles += [overlay(query, query_mask, GT_COLOUR, alpha), overlay(query, pred, PRED_COLOUR, alpha)]
    tiles = [_fit(t, size) for t in tiles]
    spacer = np.full((size[0], gap, 3), 255, np.uint8)
    row = [tiles[0]]
    for t in tiles[1:]:
        row += [spacer, t]
    return np.concatenate(row, axis=1)


def _fit(tile: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Nearest-resize a tile to ``size`` (supports may differ from the query)."""
    if tile.shape[:2] == tuple(size):
        return tile
    t = torch.from_numpy(tile).permute(2, 0, 1)[None].float()
    t = torch.nn.functional.interpolate(t, size=tuple(size), mode='nearest')
    return t[0].permute(1, 2, 0).byte().numpy()
