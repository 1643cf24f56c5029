"""Episodic segmentor: one backbone pass over query and supports, then the IFA head."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, OptSampleList, SampleList
from torch import Tensor


@MODELS.register_module()
class IFASegmentor(BaseSegmentor):
    """Few-shot segmentor for IFA/SSP-style prototype heads.

    Each data sample is one episode: ``inputs`` holds the query images, and every
    sample carries ``support_imgs`` [K, 3, H, W] and ``support_masks`` [K, H, W]
    (normalised by :class:`FewShotSegDataPreProcessor`) and, for training, the
    query mask in ``gt_sem_seg``.

    Args:
        backbone: any mmseg/mmpretrain backbone config.
        decode_head: the few-shot head (e.g. ``IFAHead``).
        neck: optional neck.
        in_index: which backbone/neck output feeds the head.
        test_cfg: ``resize_to_original=True`` resizes predictions to each query's
            ``ori_shape``; by default they stay at the model resolution, as in the
            official evaluation.
        pretrained: backbone checkpoint, as mmseg segmentors take it (it becomes the
            backbone's ``init_cfg``); ``mmseg.apis.init_model`` passes ``None``.
    """

    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 neck: OptConfigType = None,
                 in_index: int = -1,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if pretrained is not None:
            backbone = dict(backbone, init_cfg=dict(type='Pretrained', checkpoint=pretrained))
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        self.decode_head = MODELS.build(decode_head)
        self.in_index = in_index
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg or {}

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """[N, 3, H, W] images -> [N, C, h, w] features for the head."""
        feats = self.backbone(inputs)
        if self.with_neck:
            feats = self.neck(feats)
        return feats[self.in_index]

    def forward_episode(self, query: Tensor, supports: Tensor, support_masks: Tensor,
                        query_mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Logits for a batch of episodes.

        Args:
            query: [B, 3, H, W] normalised query images.
            supports: [B, K, 3, H, W] normalised support images.
            support_masks: [B, K, H, W] binary support masks.
            query_mask: [B, H, W] query labels; given in training.

        Returns:
            Logits [*, 2, H, W] by key (see ``IFAHead``); support rows are
            shot-major (row ``k*B + b``). Training keys when ``self.training``.
        """
        b, k = supports.shape[:2]
        shot_major = supports.transpose(0, 1).flatten(0, 1)
        feats = self.extract_feat(torch.cat((query, shot_major)))
        return self.decode_head(
            feats[:b], feats[b:], support_masks.transpose(0, 1).flatten(0, 1).to(feats.dtype),
            query_mask=query_mask, size=query.shape[-2:], training=self.training)

    @staticmethod
    def _episode_tensors(inputs: Tensor, data_samples: SampleList) -> Tuple[Tensor, Tensor]:
        if data_samples is None or not all(hasattr(s, 'support_imgs') for s in data_samples):
            raise ValueError('IFASegmentor needs data samples carrying support_imgs and support_masks '
                             '(pack episodes with PackFewShotInputs and FewShotSegDataPreProcessor)')
        supports = torch.stack([s.support_imgs for s in data_samples]).to(inputs.dtype)
        masks = torch.stack([s.support_masks for s in data_samples])
        return supports, masks

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """Weighted loss terms, one ``loss_<output>`` key each."""
        supports, masks = self._episode_tensors(inputs, data_samples)
        query_mask = torch.stack([s.gt_sem_seg.data[0] for s in data_samples])
        logits = self.forward_episode(inputs, supports, masks, query_mask)
        return self.decode_head.loss(logits, query_mask, masks.transpose(0, 1).flatten(0, 1))

    @staticmethod
    def _prediction(logits: Dict[str, Tensor]) -> Tensor:
        """The prediction among the head's inference outputs: refined if the head refines."""
        return logits['q_refine'] if 'q_refine' in logits else logits['q1']

    def encode_decode(self, inputs: Tensor, data_samples: SampleList) -> Tensor:
        """[B, 2, H, W] prediction logits (refined if the head refines)."""
        supports, masks = self._episode_tensors(inputs, data_samples)
        return self._prediction(self.forward_episode(inputs, supports, masks))

    def encode_support(self, supports: Tensor, support_masks: Tensor) -> Tuple[Tensor, Tensor]:
        """Prototypes of one support set, computed once for any number of queries.

        Args:
            supports: [K, 3, H, W] normalised support images.
            support_masks: [K, H, W] binary masks.

        Returns:
            Foreground and background prototypes, [1, C, 1, 1] each (mean over the K shots).
        """
        feats = self.extract_feat(supports)
        fg_k, bg_k = self.decode_head.shot_prototypes(feats, support_masks.to(feats.dtype))
        return self.decode_head.fuse_shots(fg_k, bg_k, 1)

    def predict_with_support(self, inputs: Tensor, prototypes: Tuple[Tensor, Tensor],
                             data_samples: SampleList) -> SampleList:
        """:meth:`predict` for queries that share one support set encoded by :meth:`encode_support`.

        Args:
            inputs: [B, 3, H, W] normalised query images.
            prototypes: the (foreground, background) pair from :meth:`encode_support`.
            data_samples: one per query; they receive ``seg_logits`` and ``pred_sem_seg``.
        """
        logits = self.decode_head.predict_query(self.extract_feat(inputs), *prototypes, size=inputs.shape[-2:])
        return self.postprocess_result(self._prediction(logits), data_samples)

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Adds ``seg_logits`` [2, H, W] and ``pred_sem_seg`` [1, H, W] to every sample."""
        seg_logits = self.encode_decode(inputs, data_samples)
        return self.postprocess_result(seg_logits, data_samples)

    def postprocess_result(self, seg_logits: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Argmax (ties go to background) and optional resize to ``ori_shape``."""
        resize = self.test_cfg.get('resize_to_original', False)
        for logits, sample in zip(seg_logits, data_samples):
            if resize and 'ori_shape' in sample.metainfo:
                logits = F.interpolate(logits[None], size=sample.metainfo['ori_shape'][:2], mode='bilinear',
                                       align_corners=self.decode_head.align_corners)[0]
            sample.set_data(dict(seg_logits=PixelData(data=logits),
                                 pred_sem_seg=PixelData(data=logits.argmax(0, keepdim=True))))
        return data_samples

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Dict[str, Tensor]:
        """``tensor`` mode: the raw logits dict (training keys in train mode)."""
        supports, masks = self._episode_tensors(inputs, data_samples)
        query_mask = (torch.stack([s.gt_sem_seg.data[0] for s in data_samples])
                      if self.training else None)
        return self.forward_episode(inputs, supports, masks, query_mask)

    def aug_test(self, inputs: Tensor, data_samples: SampleList) -> List:
        raise NotImplementedError('test-time augmentation is not part of the IFA protocol')
