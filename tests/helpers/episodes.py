"""Packed episodes (what the dataset pipeline hands to the model) built from the recipe."""
from typing import Dict, List

import torch
from mmengine.structures import PixelData

from ifa_mmseg.structures import FewShotDataSample

from .official_recipe import make_episodes


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    return (img * 40 + 128).clamp(0, 255).to(torch.uint8)


def pack(ep: Dict[str, torch.Tensor]) -> Dict[str, List]:
    """Episodes from :func:`make_episodes` as ``dict(inputs, data_samples)``."""
    inputs, samples = [], []
    for b in range(ep['query'].shape[0]):
        s = FewShotDataSample(metainfo=dict(img_shape=tuple(ep['query'].shape[-2:]),
                                            ori_shape=tuple(ep['query'].shape[-2:]), episode=b))
        s.gt_sem_seg = PixelData(data=ep['query_mask'][b][None])
        s.support_imgs = to_uint8(ep['supports'][b])
        s.support_masks = ep['support_masks'][b].to(torch.uint8)
        inputs.append(to_uint8(ep['query'][b]))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def packed_episodes(batch: int, shot: int, size: int = 64, seed: int = 0) -> Dict[str, List]:
    return pack(make_episodes(batch, shot, size, seed))
