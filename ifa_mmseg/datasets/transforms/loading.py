"""Loading an episode image (RGB, decoded as the official loaders do) and its binary mask."""
import io
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmseg.registry import TRANSFORMS
from PIL import Image


class UnreadableFileError(OSError):
    """An image or mask file could not be read or decoded; the message names it."""


def open_image(path: str, backend_args: Optional[dict] = None) -> Image.Image:
    """Read ``path`` (any mmengine file backend) and open it with PIL, naming the file on failure."""
    try:
        img = Image.open(io.BytesIO(fileio.get(path, backend_args=backend_args)))
        img.load()
    except Exception as err:
        raise UnreadableFileError(f'cannot read {path}: {err}') from err
    return img


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

    * ``mode='threshold'`` (Deepglobe, ISIC, Chest X-ray, FSS-1000): the mask is
      converted to grey (PIL ``'L'``) and pixels ``>= threshold`` are foreground.
    * ``mode='label'`` (PASCAL): the single-channel label map is read as stored and the
      pixels equal to ``results['mask_label']`` are foreground; everything else,
      including the 255 boundaries, is background (as the official loader).

    An empty mask is valid. The mask must have the size of the image loaded before it
    (``ori_shape``).

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
            fg = np.asarray(mask.convert('L')) >= self.threshold
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
