"""Episodic segmentor: one backbone pass over query and supports, then the IFA head."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, OptSampleList, SampleList
from torch import Tensor

from ..adaptation import Params, adapted_features
from .base_fewshot import FewShotSegmentor


@MODELS.register_module()
class IFASegmentor(FewShotSegmentor):
    """Few-shot segmentor for IFA/SSP-style prototype heads.

    Each data sample is one episode (:class:`FewShotSegmentor`).

    Args:
        backbone: any mmseg/mmpretrain backbone config.
        decode_head: the few-shot head (e.g. ``IFAHead``).
        neck: optional neck.
        in_index: which backbone/neck output feeds the head.
        test_cfg: ``resize_to_original=True`` resizes predictions to each query's
            ``ori_shape``; by default they stay at the model resolution, as in the
            official evaluation. ``episode_adaptation=dict(steps, queries_per_step,
            optimizer, params)`` (set by ``adaptation_labels='episode'``) adapts a copy of
            the weights per episode on the pseudo-queries its data sample carries
            (``adapt_imgs``, ``adapt_masks``) before predicting it
            (:class:`~ifa_mmseg.models.EpisodeAdapter`).
        pretrained: backbone checkpoint, as mmseg segmentors take it (it becomes the
            backbone's ``init_cfg``); ``mmseg.apis.init_model`` passes ``None``.
        strict_load: refuse checkpoints that do not fit (:class:`FewShotSegmentor`).
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
                 init_cfg: OptMultiConfig = None,
                 strict_load: bool = True) -> None:
        super().__init__(backbone, decode_head, train_cfg, test_cfg, data_preprocessor, pretrained, init_cfg,
                         strict_load)
        if neck is not None:
            self.neck = MODELS.build(neck)
        self.in_index = in_index
        self.set_episode_adaptation(self.test_cfg.get('episode_adaptation'))

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """[N, 3, H, W] images -> [N, C, h, w] features for the head."""
        feats = self.backbone(inputs)
        if self.with_neck:
            feats = self.neck(feats)
        return feats[self.in_index]

    def forward_episode(self, query: Tensor, supports: Tensor, support_masks: Tensor,
                        query_mask: Optional[Tensor] = None, params: Optional[Params] = None) -> Dict[str, Tensor]:
        """Logits for a batch of episodes.

        Args:
            query: [B, 3, H, W] normalised query images.
            supports: [B, K, 3, H, W] normalised support images.
            support_masks: [B, K, H, W] binary support masks.
            query_mask: [B, H, W] query labels; given in training.
            params: per-episode weights (name -> [B, *shape]) replacing the model's,
                from :meth:`EpisodeAdapter.adapt`.

        Returns:
            Logits [*, 2, H, W] by key (see ``IFAHead``); support rows are
            shot-major (row ``k*B + b``). Training keys when ``self.training``.
        """
        b, k = supports.shape[:2]
        if params is None:
            feats = self.extract_feat(torch.cat((query, supports.transpose(0, 1).flatten(0, 1))))
            feat_q, feat_s = feats[:b], feats[b:]
        else:
            feats = torch.stack([adapted_features(self, {n: v[e] for n, v in params.items()},
                                                  torch.cat((query[e:e + 1], supports[e])))
                                 for e in range(b)])
            feat_q, feat_s = feats[:, 0], feats[:, 1:].transpose(0, 1).flatten(0, 1)
        return self.decode_head(
            feat_q, feat_s, support_masks.transpose(0, 1).flatten(0, 1).to(feat_q.dtype),
            query_mask=query_mask, size=query.shape[-2:], training=self.training)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """Weighted loss terms, one ``loss_<output>`` key each."""
        supports, masks, _ = self._episode_tensors(inputs, data_samples)
        query_mask = self._query_masks(data_samples)
        logits = self.forward_episode(inputs, supports, masks, query_mask)
        return self.decode_head.loss(logits, query_mask, masks.transpose(0, 1).flatten(0, 1))

    @staticmethod
    def _prediction(logits: Dict[str, Tensor]) -> Tensor:
        """The prediction among the head's inference outputs: refined if the head refines."""
        return logits['q_refine'] if 'q_refine' in logits else logits['q1']

    def encode_decode(self, inputs: Tensor, data_samples: SampleList) -> Tensor:
        """[B, 2, H, W] prediction logits (refined if the head refines), after per-episode adaptation
        when ``test_cfg.episode_adaptation`` is set."""
        supports, masks, batch = self._episode_tensors(inputs, data_samples)
        queries = self._pseudo_queries(batch)
        if queries is None:
            return self._prediction(self.forward_episode(inputs, supports, masks))
        feat_q, feat_s = self.episode_adapter.features(self, inputs, supports, masks, *queries)
        logits = self.decode_head(feat_q, feat_s, masks.transpose(0, 1).flatten(0, 1).to(feat_q.dtype),
                                  size=inputs.shape[-2:], training=False)
        return self._prediction(logits)

    def _features(self, images: Tensor, params: Optional[Params]) -> Tensor:
        """[N, 3, H, W] -> [N, C, h, w] under the model's weights or one episode's (name -> [1, *shape])."""
        return self.extract_feat(images) if params is None else adapted_features(
            self, {n: v[0] for n, v in params.items()}, images)

    def encode_support(self, supports: Tensor, support_masks: Tensor,
                       params: Optional[Params] = None) -> Tuple[Tensor, Tensor]:
        """Prototypes of one support set, computed once for any number of queries.

        Args:
            supports: [K, 3, H, W] normalised support images.
            support_masks: [K, H, W] binary masks.
            params: the support set's adapted weights (name -> [1, *shape]), if any.

        Returns:
            Foreground and background prototypes, [1, C, 1, 1] each (mean over the K shots).
        """
        feats = self._features(supports, params)
        fg_k, bg_k = self.decode_head.shot_prototypes(feats, support_masks.to(feats.dtype))
        return self.decode_head.fuse_shots(fg_k, bg_k, 1)

    def predict_with_support(self, inputs: Tensor, prototypes: Tuple[Tensor, Tensor],
                             data_samples: SampleList, params: Optional[Params] = None) -> SampleList:
        """:meth:`predict` for queries that share one support set encoded by :meth:`encode_support`.

        Args:
            inputs: [B, 3, H, W] normalised query images.
            prototypes: the (foreground, background) pair from :meth:`encode_support`.
            data_samples: one per query; they receive ``seg_logits`` and ``pred_sem_seg``.
            params: the support set's adapted weights (name -> [1, *shape]), if any.
        """
        logits = self.decode_head.predict_query(self._features(inputs, params), *prototypes,
                                                size=inputs.shape[-2:])
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
        supports, masks, _ = self._episode_tensors(inputs, data_samples)
        query_mask = self._query_masks(data_samples) if self.training else None
        return self.forward_episode(inputs, supports, masks, query_mask)
