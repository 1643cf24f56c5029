"""Episodic segmentor of HSNet and PATNet: multi-layer features, one 4D-correlation head pass per support shot."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, OptSampleList, SampleList
from torch import Tensor

from .base_fewshot import FewShotSegmentor


@MODELS.register_module()
class HypercorrSegmentor(FewShotSegmentor):
    """Few-shot segmentor for hypercorrelation heads: HSNet (``HSNetHead``) and PATNet (``PATNetHead``).

    Each data sample is one episode (:class:`FewShotSegmentor`). The backbone (e.g.
    ``MultiLayerResNet``) runs once over the queries and all supports and returns a list of maps;
    the head predicts the queries from each support shot alone.

    K shots follow both official codes (``predict_mask_nshot`` of hsnet ``model/hsnet.py`` and patnet
    ``model/patnet.py``): ``pred_sem_seg`` is the vote of the K per-shot argmax masks
    (:func:`~ifa_mmseg.models.heads.hypercorrelation.vote_shots`); ``seg_logits`` is the mean of the
    K logits. The official training is 1-shot; with K shots the loss averages the shots' terms.

    Args:
        backbone: a backbone returning every map the head correlates (``MultiLayerResNet``).
        decode_head: ``HSNetHead`` or ``PATNetHead``.
        test_cfg: ``resize_to_original=True`` upsamples the head's logits straight to each query's
            ``ori_shape`` (HSNet's ``use_original_imgsize``); by default they go to the model input size,
            as the official evaluation on the cross-domain benchmarks.
        pretrained: backbone checkpoint, as mmseg segmentors take it (it becomes the backbone's ``init_cfg``).
        strict_load: refuse checkpoints that do not fit (:class:`FewShotSegmentor`).
    """

    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None,
                 strict_load: bool = True) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg, strict_load=strict_load)
        if pretrained is not None:
            backbone = dict(backbone, init_cfg=dict(type='Pretrained', checkpoint=pretrained))
        self.backbone = MODELS.build(backbone)
        self.decode_head = MODELS.build(decode_head)
        maps = getattr(self.backbone, 'num_blocks', None)  # other backbones are checked when they run
        if maps is not None and tuple(maps) != self.decode_head.num_blocks:
            raise ValueError(f'the backbone returns {tuple(maps)} maps per layer group but the head correlates '
                             f'num_blocks={self.decode_head.num_blocks}: make backbone.out_indices and '
                             'decode_head.num_blocks agree')
        self.train_cfg = train_cfg
        self.test_cfg = dict(test_cfg or {})

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """[N, 3, H, W] images -> the backbone's maps [N, C_l, h_l, w_l], shallow to deep."""
        return list(self.backbone(inputs))

    def forward_episode(self, query: Tensor, supports: Tensor, support_masks: Tensor) -> Tensor:
        """Low-resolution logits of every (query, shot) pair.

        Args:
            query: [B, 3, H, W] normalised query images.
            supports: [B, K, 3, H, W] normalised support images.
            support_masks: [B, K, H, W] binary support masks.

        Returns:
            [B, K, 2, h, w] logits (h, w: the head's output size, a quarter of the image for R-50).
        """
        b, k = supports.shape[:2]
        feats = self.extract_feat(torch.cat((query, supports.flatten(0, 1))))
        query_feats = [f[:b] for f in feats]
        support_feats = [f[b:].unflatten(0, (b, k)) for f in feats]
        # one shot at a time, as the official code: the 4D tensors of K shots at once would take K times the memory
        return torch.stack([self.decode_head(query_feats, [f[:, i] for f in support_feats], support_masks[:, i])
                            for i in range(k)], 1)

    def _upsample(self, logits: Tensor, size: Tuple[int, int]) -> Tensor:
        """[B, K, 2, h, w] -> [B, K, 2, *size], bilinear."""
        out = F.interpolate(logits.flatten(0, 1), size, mode='bilinear', align_corners=self.decode_head.align_corners)
        return out.unflatten(0, logits.shape[:2])

    def encode_decode(self, inputs: Tensor, data_samples: SampleList) -> Tensor:
        """[B, K, 2, H, W] logits of every shot at the input size."""
        supports, masks = self._episode_tensors(inputs, data_samples)
        return self._upsample(self.forward_episode(inputs, supports, masks), inputs.shape[-2:])

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """The head's loss terms, one ``loss_<name>`` key each."""
        return self.decode_head.loss(self.encode_decode(inputs, data_samples), self._query_masks(data_samples))

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Adds ``seg_logits`` [2, H, W] and ``pred_sem_seg`` [1, H, W] (the K-shot vote) to every sample."""
        supports, masks = self._episode_tensors(inputs, data_samples)
        logits = self.forward_episode(inputs, supports, masks)
        resize = self.test_cfg.get('resize_to_original', False)
        for shot_logits, sample in zip(logits, data_samples):
            size = sample.metainfo['ori_shape'][:2] if resize and 'ori_shape' in sample.metainfo else inputs.shape[-2:]
            seg_logits, pred = self.decode_head.predict_by_shots(self._upsample(shot_logits[None], size))
            sample.set_data(dict(seg_logits=PixelData(data=seg_logits[0]), pred_sem_seg=PixelData(data=pred)))
        return data_samples

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        """``tensor`` mode: [B, K, 2, H, W] logits of every shot."""
        return self.encode_decode(inputs, data_samples)
