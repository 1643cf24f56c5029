"""Resize to a fixed size with the official interpolation rules for image and mask."""
from functools import lru_cache
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import Resize
from mmseg.registry import TRANSFORMS


@lru_cache(maxsize=64)
def legacy_nearest_index(size_in: Tuple[int, int], size_out: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """The source rows and columns that ``F.interpolate(mode='nearest')`` reads for ``size_in`` -> ``size_out``.

    Both sizes are (h, w). The indices are obtained by interpolating the row and column
    numbers themselves with PyTorch's own kernel, so they are PyTorch's exactly
    (``floor(dst * scale)`` with its float scale, clamped to the input).
    """
    (h, w), (out_h, out_w) = size_in, size_out
    rows = F.interpolate(torch.arange(h, dtype=torch.float32).view(1, 1, h, 1), size=(out_h, 1), mode='nearest')
    cols = F.interpolate(torch.arange(w, dtype=torch.float32).view(1, 1, 1, w), size=(1, out_w), mode='nearest')
    index = rows.flatten().long().numpy(), cols.flatten().long().numpy()
    for array in index:
        array.setflags(write=False)  # shared by every caller through the cache
    return index


def legacy_nearest(mask: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize a [H, W] array to ``size`` (h, w) as ``F.interpolate(mode='nearest')`` does.

    This is PyTorch's legacy nearest rule (source index ``floor(dst * in / out)``), which
    the official loaders apply to the binarised masks; PIL's and OpenCV's nearest pick
    other pixels. Nearest resizing only selects pixels, so it is done by indexing with
    :func:`legacy_nearest_index`, in the mask's own dtype.
    """
    rows, cols = legacy_nearest_index(tuple(mask.shape), tuple(size))
    return np.take(np.take(mask, rows, axis=0), cols, axis=1)


@TRANSFORMS.register_module()
class FewShotResize(Resize):
    """Resize the image with PIL bilinear and the masks with PyTorch legacy nearest.

    This reproduces the official pixels: torchvision ``Resize((h, w))`` on the PIL
    image (bilinear with PIL's antialiasing, aspect ratio not kept; official
    ``data/dataset.py``, ``FSSDataset.initialize``) and ``F.interpolate(mode='nearest')``
    on the {0, 1} mask (``__getitem__`` of the official ``data/*.py`` loaders). Every key
    of ``seg_fields`` is resized.

    Args:
        scale: output (w, h).
        interpolation: PIL interpolation of the image.
    """

    def __init__(self, scale: Tuple[int, int] = (400, 400), interpolation: str = 'bilinear') -> None:
        super().__init__(scale=scale, keep_ratio=False, backend='pillow', interpolation=interpolation)

    def _resize_seg(self, results: dict) -> None:
        h, w = results['img_shape']
        for key in results.get('seg_fields', []):
            results[key] = legacy_nearest(results[key], (h, w))
