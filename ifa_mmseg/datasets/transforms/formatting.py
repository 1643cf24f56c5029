"""Packing one episode (query plus K supports) into the model's input format."""
from typing import List, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import PixelData
from mmseg.registry import TRANSFORMS

from ...structures import FewShotDataSample


def image_tensor(img: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 -> [3, H, W] uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


@TRANSFORMS.register_module()
class PackFewShotInputs(BaseTransform):
    """Pack ``dict(query=results, supports=[results, ...])`` for :class:`IFASegmentor`.

    Returns ``dict(inputs, data_samples)``: ``inputs`` is the query image (uint8 [3, H, W]
    in the loaded channel order); the :class:`~ifa_mmseg.structures.FewShotDataSample` holds
    ``gt_sem_seg`` (the query mask, long [1, H, W], when the query has one), ``support_imgs``
    (uint8 [K, 3, H, W]) and ``support_masks`` (uint8 [K, H, W]). Its metainfo has the query's
    ``meta_keys`` (those present) plus ``support_paths`` and ``support_seg_map_paths``.
    An episode with ``pseudo_queries`` (V results, per-episode adaptation) and
    ``pseudo_sources`` (the support each copies) also gives ``adapt_imgs`` (uint8
    [V, 3, H, W]) and ``adapt_masks`` (uint8 [V, H, W]), and metainfo ``pseudo_query_sources``.
    ``FewShotSegDataPreProcessor`` normalises query, supports and pseudo-queries alike.

    Args:
        meta_keys: query result keys copied into the metainfo.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                                             'scale_factor', 'class_id', 'episode', 'episode_seed',
                                             'pseudo_query_index', 'mask_label')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        query, supports = results['query'], results['supports']
        pseudo = results.get('pseudo_queries', [])
        self._check_shapes(query, [*supports, *pseudo])
        sample = FewShotDataSample()
        if 'gt_seg_map' in query:
            sample.gt_sem_seg = PixelData(data=torch.from_numpy(query['gt_seg_map'][None].astype(np.int64)))
        sample.support_imgs = torch.stack([image_tensor(s['img']) for s in supports])
        sample.support_masks = torch.from_numpy(np.stack([s['gt_seg_map'] for s in supports]))
        if pseudo:
            sample.adapt_imgs = torch.stack([image_tensor(p['img']) for p in pseudo])
            sample.adapt_masks = torch.from_numpy(np.stack([p['gt_seg_map'] for p in pseudo]))
        meta = {k: query[k] for k in self.meta_keys if k in query}
        meta['support_paths'] = [s['img_path'] for s in supports]
        meta['support_seg_map_paths'] = [s['seg_map_path'] for s in supports]
        if pseudo:
            meta['pseudo_query_sources'] = list(results['pseudo_sources'])
        sample.set_metainfo(meta)
        return dict(inputs=image_tensor(query['img']), data_samples=sample)

    @staticmethod
    def _check_shapes(query: dict, supports: List[dict]) -> None:
        shape = query['img'].shape[:2]
        for s in supports:
            if s['img'].shape[:2] != shape or s['gt_seg_map'].shape != shape:
                raise ValueError(f'support (or pseudo-query) {s["img_path"]} is {s["img"].shape[:2]} (mask '
                                 f'{s["gt_seg_map"].shape}) after the pipeline but the query '
                                 f'{query["img_path"]} is {shape}: resize every image to one size')

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
