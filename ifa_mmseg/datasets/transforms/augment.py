"""The pseudo-query augmentations of IFA adaptation (official ``data/*_IFA.py``), without albumentations.

Each transform follows the albumentations 1.x operation of the same name that the
official ``*_IFA.py`` loaders use; random values come from numpy's global generator,
like mmcv's random transforms. Geometric transforms move the image and every
``seg_fields`` map together; photometric ones change the (RGB) image only. Flips are
mmseg's ``RandomFlip`` (one instance per direction, as albumentations'
``HorizontalFlip`` / ``VerticalFlip``).
"""
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

Limit = Union[float, Sequence[float]]


def symmetric(limit: Limit) -> Tuple[float, float]:
    """``x`` -> ``(-x, x)``; a pair stays as it is (albumentations' convention)."""
    if isinstance(limit, (int, float)):
        return -float(limit), float(limit)
    low, high = limit
    return float(low), float(high)


def _apply_geometric(results: dict, fn) -> dict:
    results['img'] = np.ascontiguousarray(fn(results['img']))
    for key in results.get('seg_fields', []):
        results[key] = np.ascontiguousarray(fn(results[key]))
    results['img_shape'] = results['img'].shape[:2]
    return results


@TRANSFORMS.register_module()
class RandomRotate90(BaseTransform):
    """With probability ``prob``, rotate by ``k`` x 90 degrees, ``k`` uniform in {0, 1, 2, 3}.

    As albumentations' ``RandomRotate90`` (``np.rot90``; ``k = 0`` leaves the image as it is).
    """

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        k = np.random.randint(4)
        return _apply_geometric(results, lambda a: np.rot90(a, k))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'


@TRANSFORMS.register_module()
class RandomGridShuffle(BaseTransform):
    """With probability ``prob``, cut the image into a ``grid`` (rows, cols) and permute the tiles.

    As albumentations' ``RandomGridShuffle``: cell borders at
    ``linspace(0, size, n + 1)`` truncated to integers, and tiles are permuted only among
    tiles of the same size, so the output keeps the input's size.
    """

    def __init__(self, grid: Tuple[int, int] = (2, 2), prob: float = 1.0) -> None:
        if min(grid) < 1:
            raise ValueError(f'grid must be positive, got {grid}')
        self.grid = tuple(grid)
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        h, w = results['img'].shape[:2]
        rows, cols = self.grid
        if rows > h or cols > w:
            raise ValueError(f'grid {self.grid} is larger than the image ({h}x{w}) of {results.get("img_path")}')
        ys = np.linspace(0, h, rows + 1).astype(int)
        xs = np.linspace(0, w, cols + 1).astype(int)
        cells = [(slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1])) for i in range(rows) for j in range(cols)]
        sizes = np.array([(s[0].stop - s[0].start, s[1].stop - s[1].start) for s in cells])
        source = np.arange(len(cells))
        for size in np.unique(sizes, axis=0):
            same = np.flatnonzero((sizes == size).all(axis=1))
            source[same] = np.random.permutation(same)

        def shuffle(a: np.ndarray) -> np.ndarray:
            out = np.empty_like(a)
            for dst, src in enumerate(source):
                out[cells[dst]] = a[cells[src]]
            return out

        return _apply_geometric(results, shuffle)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(grid={self.grid}, prob={self.prob})'


@TRANSFORMS.register_module()
class RandomBrightnessContrast(BaseTransform):
    """With probability ``prob``: ``img * (1 + c) + 255 * b``, clipped and truncated to uint8.

    ``c`` and ``b`` are uniform in ``contrast_limit`` and ``brightness_limit``; this is
    albumentations' ``RandomBrightnessContrast`` with ``brightness_by_max=True`` on
    uint8 images (a float32 lookup table).
    """

    def __init__(self, brightness_limit: Limit = 0.2, contrast_limit: Limit = 0.2, prob: float = 0.5) -> None:
        self.brightness_limit = symmetric(brightness_limit)
        self.contrast_limit = symmetric(contrast_limit)
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        alpha = 1.0 + np.random.uniform(*self.contrast_limit)
        beta = np.random.uniform(*self.brightness_limit)
        lut = np.arange(256, dtype=np.float32) * np.float32(alpha) + np.float32(beta * 255)
        results['img'] = np.clip(lut, 0, 255).astype(np.uint8)[results['img']]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness_limit={self.brightness_limit}, '
                f'contrast_limit={self.contrast_limit}, prob={self.prob})')


@TRANSFORMS.register_module()
class HueSaturationValue(BaseTransform):
    """With probability ``prob``, shift hue, saturation and value of an RGB uint8 image.

    As albumentations' ``HueSaturationValue`` on uint8: OpenCV HSV (hue in 0..179), hue
    shifted modulo 180, saturation and value shifted and clipped to 0..255; the shifts
    are uniform in the limits.
    """

    def __init__(self, hue_shift_limit: Limit = 20, sat_shift_limit: Limit = 30, val_shift_limit: Limit = 20,
                 prob: float = 1.0) -> None:
        self.hue_shift_limit = symmetric(hue_shift_limit)
        self.sat_shift_limit = symmetric(sat_shift_limit)
        self.val_shift_limit = symmetric(val_shift_limit)
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        hue, sat, val = (np.random.uniform(*lim) for lim in
                         (self.hue_shift_limit, self.sat_shift_limit, self.val_shift_limit))
        levels = np.arange(256, dtype=np.int16)
        luts = (np.mod(levels + hue, 180), np.clip(levels + sat, 0, 255), np.clip(levels + val, 0, 255))
        hsv = cv2.cvtColor(results['img'], cv2.COLOR_RGB2HSV)
        hsv = np.stack([lut.astype(np.uint8)[hsv[..., c]] for c, lut in enumerate(luts)], axis=-1)
        results['img'] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(hue_shift_limit={self.hue_shift_limit}, '
                f'sat_shift_limit={self.sat_shift_limit}, val_shift_limit={self.val_shift_limit}, '
                f'prob={self.prob})')
