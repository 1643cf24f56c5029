"""Episodic segmentor: one backbone pass over query and supports, then the IFA head."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, OptSampleList, SampleList
from torch import Tensor

from ...structures import FewShotSampleList
from ..adaptation import EpisodeAdapter, Params, adapted_features
from ..utils.state_check import check_loaded_state


@MODELS.register_module()
class IFASegmentor(BaseSegmentor):
    """Few-shot segmentor for IFA/SSP-style prototype heads.

    Each data sample is one episode (:class:`~ifa_mmseg.structures.FewShotDataSample`):
    ``inputs`` holds the query images, and every sample carries ``support_imgs``
    [K, 3, H, W] and ``support_masks`` [K, H, W] (normalised by
    :class:`FewShotSegDataPreProcessor`) and, for training, the query mask in
    ``gt_sem_seg``. The model reads the batch tensors of the
    :class:`~ifa_mmseg.structures.FewShotSampleList` that the data preprocessor gives; any
    other list of samples is stacked once by the same constructor.

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
        strict_load: refuse a checkpoint that lacks any of the model's weights and buffers or
            has keys that fit none (every loader: ``load_from``, ``init_model``, the
            inferencer); ``False`` loads what fits. Non-finite values are refused either way
            (:func:`~ifa_mmseg.models.utils.check_loaded_state`).
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
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.strict_load = strict_load
        self.register_load_state_dict_post_hook(check_loaded_state)
        if pretrained is not None:
            backbone = dict(backbone, init_cfg=dict(type='Pretrained', checkpoint=pretrained))
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        self.decode_head = MODELS.build(decode_head)
        self.in_index = in_index
        self.train_cfg = train_cfg
        self.test_cfg = dict(test_cfg or {})
        self.set_episode_adaptation(self.test_cfg.get('episode_adaptation'))

    def set_episode_adaptation(self, settings: Optional[dict]) -> None:
        """Adapt a copy of the weights per test episode with these settings (``test_cfg.episode_adaptation``),
        or not with ``None``; a model built before its config was resolved receives them here."""
        if settings:
            self.test_cfg['episode_adaptation'] = settings
        else:
            self.test_cfg.pop('episode_adaptation', None)
        self.episode_adapter = EpisodeAdapter.from_settings(settings) if settings else None
        if self.episode_adapter is not None:
            self.episode_adapter.parameter_names(self)  # refuse unknown names now, not at the first episode

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

    @staticmethod
    def _episodes(inputs: Tensor, data_samples: OptSampleList) -> Tuple[Tensor, Tensor, FewShotSampleList]:
        """The batch's supports [B, K, 3, H, W] (in the dtype of ``inputs``), their masks [B, K, H, W], and
        the batch (:meth:`FewShotSampleList.of`: the data preprocessor's as it is, any other list stacked)."""
        if not data_samples:
            raise ValueError('IFASegmentor needs data samples carrying support_imgs and support_masks '
                             '(pack episodes with PackFewShotInputs and FewShotSegDataPreProcessor)')
        samples = FewShotSampleList.of(data_samples)
        return samples.support_imgs.to(inputs.dtype), samples.support_masks, samples

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """Weighted loss terms, one ``loss_<output>`` key each."""
        supports, masks, _ = self._episodes(inputs, data_samples)
        query_mask = torch.stack([s.gt_sem_seg.data[0] for s in data_samples])
        logits = self.forward_episode(inputs, supports, masks, query_mask)
        return self.decode_head.loss(logits, query_mask, masks.transpose(0, 1).flatten(0, 1))

    @staticmethod
    def _prediction(logits: Dict[str, Tensor]) -> Tensor:
        """The prediction among the head's inference outputs: refined if the head refines."""
        return logits['q_refine'] if 'q_refine' in logits else logits['q1']

    def encode_decode(self, inputs: Tensor, data_samples: SampleList) -> Tensor:
        """[B, 2, H, W] prediction logits (refined if the head refines), after per-episode adaptation
        when ``test_cfg.episode_adaptation`` is set."""
        supports, masks, samples = self._episodes(inputs, data_samples)
        queries = self._pseudo_queries(samples)
        if queries is None:
            return self._prediction(self.forward_episode(inputs, supports, masks))
        feat_q, feat_s = self.episode_adapter.features(self, inputs, supports, masks, *queries)
        logits = self.decode_head(feat_q, feat_s, masks.transpose(0, 1).flatten(0, 1).to(feat_q.dtype),
                                  size=inputs.shape[-2:], training=False)
        return self._prediction(logits)

    def _pseudo_queries(self, samples: FewShotSampleList) -> Optional[Tuple[Optional[Tensor], Optional[Tensor]]]:
        """The batch's pseudo-queries [B, V, 3, H, W] and masks [B, V, H, W] for per-episode adaptation
        (``None, None`` when it takes no step), or ``None`` without per-episode adaptation.

        Raises:
            ValueError: the samples carry pseudo-queries but the model does not adapt, or
                the other way round (the resolver sets both from ``adaptation_labels``).
        """
        carried = samples.adapt_imgs is not None  # by every sample of the batch, or by none
        if self.episode_adapter is None:
            if carried:
                raise ValueError('the episodes carry pseudo-queries (adapt_imgs) but model.test_cfg has no '
                                 "episode_adaptation: set adaptation_labels='episode' for both")
            return None
        if self.episode_adapter.num_queries == 0:  # no step: the checkpoint's weights, by the same route
            return None, None
        if not carried:
            raise ValueError("model.test_cfg.episode_adaptation needs every episode's pseudo-queries (adapt_imgs, "
                             "adapt_masks): the test dataset's adapt_queries, set by adaptation_labels='episode'")
        return samples.adapt_imgs, samples.adapt_masks

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
        supports, masks, _ = self._episodes(inputs, data_samples)
        query_mask = (torch.stack([s.gt_sem_seg.data[0] for s in data_samples])
                      if self.training else None)
        return self.forward_episode(inputs, supports, masks, query_mask)

    def aug_test(self, inputs: Tensor, data_samples: SampleList) -> List:
        raise NotImplementedError('test-time augmentation is not part of the IFA protocol')
