"""Resize to a fixed size with the official interpolation rules for image and mask."""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmcv.transforms import Resize
from mmseg.registry import TRANSFORMS


def legacy_nearest(mask, size: Tuple[int, int]):
    """Resize a [H, W] uint8 array to ``size`` (h, w) with ``F.interpolate(mode='nearest')``.

    This is PyTorch's legacy nearest rule (source index ``floor(dst * in / out)``), which
    the official loaders apply to the binarised masks; PIL's and OpenCV's nearest pick
    other pixels.
    """
    tensor = torch.from_numpy(mask)[None, None].float()
    return F.interpolate(tensor, size=size, mode='nearest')[0, 0].to(torch.uint8).numpy()


@TRANSFORMS.register_module()
class FewShotResize(Resize):
    """Resize the image with PIL bilinear and the masks with PyTorch legacy nearest.

    This reproduces the official pixels (spec §7.1, §12.1): torchvision
    ``Resize((h, w))`` on the PIL image (bilinear with PIL's antialiasing, aspect ratio
    not kept) and ``F.interpolate(mode='nearest')`` on the {0, 1} mask. Every key of
    ``seg_fields`` is resized.

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
