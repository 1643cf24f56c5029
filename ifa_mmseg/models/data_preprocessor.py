"""Normalises and batches episodes: query images plus the supports in each sample."""
from typing import Any, Dict, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from mmseg.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class FewShotSegDataPreProcessor(BaseDataPreprocessor):
    """Stack and normalise query images and support images alike.

    Inputs are the packed query images ([3, H, W] each, all of one size as the
    episode pipelines resize to a fixed size); every data sample carries
    ``support_imgs`` [K, 3, H, W] and ``support_masks`` [K, H, W]. After this
    step ``inputs`` is a float [B, 3, H, W] batch and each sample's
    ``support_imgs`` holds the normalised float supports.

    Args:
        mean, std: per-channel statistics in the 0-255 scale.
        bgr_to_rgb: swap channels 0 and 2 first (for BGR-decoded images).
    """

    def __init__(self,
                 mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375),
                 bgr_to_rgb: bool = False,
                 non_blocking: Optional[bool] = False) -> None:
        super().__init__(non_blocking)
        self.register_buffer('mean', torch.tensor(mean).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(-1, 1, 1), False)
        self.bgr_to_rgb = bgr_to_rgb

    def _normalize(self, imgs: Tensor) -> Tensor:
        """[..., 3, H, W] uint8/float images -> normalised float."""
        if self.bgr_to_rgb:
            imgs = imgs.flip(-3)
        return (imgs.float() - self.mean) / self.std

    def forward(self, data: Dict[str, Any], training: bool = False) -> Dict[str, Any]:
        data = self.cast_data(data)
        samples = data['data_samples']
        inputs = data['inputs']
        query = inputs if isinstance(inputs, Tensor) else torch.stack(list(inputs))
        supports = self._normalize(torch.stack([s.support_imgs for s in samples]))
        for sample, sup in zip(samples, supports):
            sample.support_imgs = sup
        return dict(inputs=self._normalize(query), data_samples=samples)
