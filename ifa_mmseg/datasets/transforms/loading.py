"""Loading an episode image (RGB, decoded as the official loaders do) and its binary mask."""
import io
from typing import Optional, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmseg.registry import TRANSFORMS
from PIL import Image

# the decoding rule of binary masks, quoted by every error about a mask without foreground
MASK_RULE = ('foreground is palette index != 0 for palette masks, value 1 for masks holding only 0 and 1, '
             'else grey level >= threshold (16-bit masks scaled to 0-255)')
MAX_SHOWN_VALUES = 4  # distinct values quoted in an EmptyMaskError


class UnreadableFileError(OSError):
    """An image or mask file could not be read or decoded; the message names it."""


class EmptyMaskError(ValueError):
    """A mask with non-zero pixels has no foreground under :data:`MASK_RULE`; the message names it."""


def open_image(path: str, backend_args: Optional[dict] = None) -> Image.Image:
    """Read ``path`` (any mmengine file backend) and open it with PIL, naming the file on failure."""
    try:
        img = Image.open(io.BytesIO(fileio.get(path, backend_args=backend_args)))
        img.load()
    except Exception as err:
        raise UnreadableFileError(f'cannot read {path}: {err}') from err
    return img


def _distinct(values: np.ndarray) -> str:
    """The first few distinct values (pixels, or colours for [H, W, C]) of ``values``, for messages."""
    found = np.unique(values.reshape(-1, values.shape[-1]), axis=0) if values.ndim == 3 else np.unique(values)
    shown = [str(tuple(v.tolist())) if values.ndim == 3 else str(v.item()) for v in found[:MAX_SHOWN_VALUES]]
    return ', '.join(shown) + (', ...' if len(found) > MAX_SHOWN_VALUES else '')


def _levels_foreground(levels: np.ndarray, threshold: int, full_scale: int) -> np.ndarray:
    """bool [H, W]: ``levels == 1`` for a 0/1 mask, else ``levels * 255 / full_scale >= threshold``."""
    if levels.max() <= 1 and levels.min() >= 0:
        return levels == 1
    if full_scale == 255:
        return levels >= threshold  # the official rule, bit for bit
    return levels.astype(np.int64) * 255 >= threshold * full_scale  # integer form of the scaling


def binary_mask(mask: Union[Image.Image, np.ndarray], threshold: int, path: str) -> np.ndarray:
    """The foreground of a binary mask, bool [H, W], by one rule for every way masks are stored.

    * palette images (PIL ``'P'``, ``'PA'``): foreground is every palette index but 0
      (index 0 is background, whatever its colour);
    * 16-bit images (``'I;16'``, ``'I;16B'``, ...) and 32-bit ``'I'``: a mask holding only
      0 and 1 has foreground 1; otherwise values are scaled to 0-255 (``* 255 / 65535``;
      ``'I'`` values beyond 16 bits ``* 255 / (2**31 - 1)``) and foreground is
      ``>= threshold``;
    * every other image (grey ``'L'``/``'1'``, colour ``'RGB'``/``'RGBA'``/``'LA'``, ...) is
      converted to grey (PIL ``convert('L')``, as the official loaders): a mask holding
      only 0 and 1 has foreground 1, otherwise foreground is ``grey >= threshold`` (the
      official rule, so 0/255 and anti-aliased masks decode as in the official code);
    * arrays: bool [H, W] is the foreground itself; integer [H, W] holds grey levels
      (0/1, or 0-255 thresholded); uint8 [H, W, 3 or 4] is a colour image as above.

    An all-zero mask has no foreground.

    Args:
        mask: the decoded mask image, or an array.
        threshold: grey level (0-255) from which a pixel is foreground.
        path: the mask's file (or a name for an array), quoted in errors.

    Raises:
        EmptyMaskError: no foreground although the stored mask has non-zero pixels, i.e.
            its foreground is stored in a way this rule does not read.
        ValueError: an array of another type or shape.
    """
    if isinstance(mask, np.ndarray):
        if mask.dtype == np.bool_ and mask.ndim == 2:
            return mask
        if mask.dtype == np.uint8 and mask.ndim == 3 and mask.shape[2] in (3, 4):
            return binary_mask(Image.fromarray(mask), threshold, path)
        if not np.issubdtype(mask.dtype, np.integer) or mask.ndim != 2:
            raise ValueError(f'{path}: a mask array must be bool or integer [H, W], or uint8 colour '
                             f'[H, W, 3 or 4], got {mask.dtype} {list(mask.shape)}')
        levels, full_scale, kind, converted = mask, 255, f'{mask.dtype} array', False
    elif mask.mode in ('P', 'PA'):
        return np.asarray(mask)[..., 0] != 0 if mask.mode == 'PA' else np.asarray(mask) != 0
    elif mask.mode.startswith('I'):
        levels, kind, converted = np.asarray(mask), f'PIL mode {mask.mode}', False
        wide = mask.mode == 'I' and levels.max() > 65535  # older Pillow opens 16-bit PNGs as 'I'
        full_scale = 2**31 - 1 if wide else 65535
    else:
        converted = mask.mode != 'L'
        levels = np.asarray(mask.convert('L') if converted else mask)
        full_scale, kind = 255, f'PIL mode {mask.mode}'
    fg = _levels_foreground(levels, threshold, full_scale)
    if not fg.any():
        stored = mask if isinstance(mask, np.ndarray) else np.asarray(mask)
        if stored.any():
            grey = f' (grey levels {_distinct(levels)})' if converted else ''
            raise EmptyMaskError(
                f'{path}: the mask ({kind}, values {_distinct(stored)}{grey}) has non-zero pixels but no '
                f'foreground: {MASK_RULE}, threshold {threshold}. Store the foreground as 255 (or 1) on a 0 '
                "background, or lower LoadBinaryMask's threshold")
    return fg


@TRANSFORMS.register_module()
class LoadRGBImageFromFile(BaseTransform):
    """Decode ``img_path`` with PIL and ``convert('RGB')``, like the official loaders.

    Unlike mmcv's ``LoadImageFromFile`` the channels are RGB, EXIF orientation is
    ignored and 'LA' images lose their alpha plainly, so the pixels are those of
    ``PIL.Image.open(path).convert('RGB')``.

    Added keys: ``img`` (uint8 [H, W, 3] RGB), ``img_shape``, ``ori_shape``.

    Args:
        backend_args: mmengine file backend arguments.
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        img = open_image(results['img_path'], self.backend_args)
        img = np.array(img if img.mode == 'RGB' else img.convert('RGB'))
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'


@TRANSFORMS.register_module()
class LoadBinaryMask(BaseTransform):
    """Load ``seg_map_path`` as a {0, 1} foreground mask of the episode class.

    * ``mode='threshold'`` (Deepglobe, ISIC, Chest X-ray, FSS-1000): the rule of
      :func:`binary_mask`. Palette masks: every index but 0 is foreground. Masks
      holding only 0 and 1 (8-bit, 16-bit or colour): 1 is foreground. Otherwise the
      mask is converted to grey (PIL ``'L'``; 16-bit values scaled to 0-255) and pixels
      ``>= threshold`` are foreground, the official rule. A mask with non-zero pixels
      but no foreground raises :class:`EmptyMaskError` instead of training or
      scoring on an empty mask.
    * ``mode='label'`` (PASCAL): the single-channel label map is read as stored and the
      pixels equal to ``results['mask_label']`` are foreground; everything else,
      including the 255 boundaries, is background (as the official loader).

    An all-zero mask is valid (no foreground). The mask must have the size of the image
    loaded before it (``ori_shape``).

    Added keys: ``gt_seg_map`` (uint8 [H, W]); ``'gt_seg_map'`` joins ``seg_fields``.

    Args:
        mode: ``'threshold'`` or ``'label'``.
        threshold: grey level from which a pixel is foreground.
        backend_args: mmengine file backend arguments.
    """

    def __init__(self, mode: str = 'threshold', threshold: int = 128,
                 backend_args: Optional[dict] = None) -> None:
        if mode not in ('threshold', 'label'):
            raise ValueError(f"mode must be 'threshold' or 'label', got {mode!r}")
        self.mode = mode
        self.threshold = threshold
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['seg_map_path']
        mask = open_image(path, self.backend_args)
        if self.mode == 'threshold':
            fg = binary_mask(mask, self.threshold, path)
        else:
            labels = np.asarray(mask)
            if labels.ndim != 2:
                raise ValueError(f'{path}: a label map must have one channel (palette or grey), '
                                 f'got mode {mask.mode}')
            fg = labels == results['mask_label']
        if 'ori_shape' in results and fg.shape != tuple(results['ori_shape']):
            raise ValueError(f'mask {path} is {fg.shape[1]}x{fg.shape[0]} (w x h) but its image '
                             f'{results["img_path"]} is {results["ori_shape"][1]}x{results["ori_shape"][0]}')
        results['gt_seg_map'] = fg.astype(np.uint8)
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(mode={self.mode!r}, threshold={self.threshold})'
