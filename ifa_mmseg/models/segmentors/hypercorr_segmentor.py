"""Episodic segmentor of HSNet and PATNet: multi-layer features, one 4D-correlation head pass per support shot."""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, OptSampleList, SampleList
from torch import Tensor
from torch.func import functional_call

from ..adaptation import EpisodeAdapter
from .base_fewshot import FewShotSegmentor

ShotHead = Callable[[Sequence[Tensor], Sequence[Tensor], Tensor], Tensor]  # decode_head's one-shot forward


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
            as the official evaluation on the cross-domain benchmarks. ``episode_adaptation`` (set by
            ``adaptation_labels='episode'``) adapts a copy of the head's weights per episode on the
            pseudo-queries its data sample carries before predicting it (:meth:`adapted_episode_logits`).
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
        super().__init__(backbone, decode_head, train_cfg, test_cfg, data_preprocessor, pretrained, init_cfg,
                         strict_load)
        maps = getattr(self.backbone, 'num_blocks', None)  # other backbones are checked when they run
        if maps is not None and tuple(maps) != self.decode_head.num_blocks:
            raise ValueError(f'the backbone returns {tuple(maps)} maps per layer group but the head correlates '
                             f'num_blocks={self.decode_head.num_blocks}: make backbone.out_indices and '
                             'decode_head.num_blocks agree')
        self.set_episode_adaptation(self.test_cfg.get('episode_adaptation'))

    def check_episode_adapter(self, adapter: EpisodeAdapter) -> None:
        """Only the head adapts, on the 'loop' engine: the frozen backbone's maps are computed once per episode."""
        if adapter.engine != 'loop':
            raise ValueError(f"episode adaptation: {type(self).__name__} runs the 'loop' engine only, got "
                             f'engine={adapter.engine!r}')
        outside = [n for n in adapter.parameter_names(self) if not n.startswith('decode_head.')]
        if outside:
            raise ValueError(f'episode adaptation: {type(self).__name__} adapts decode_head parameters only (its '
                             f'backbone maps are computed once per episode, without gradient), got {outside[:3]}')

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
        return shot_logits(self.decode_head, [f[:b] for f in feats], [f[b:].unflatten(0, (b, k)) for f in feats],
                           support_masks)

    def adapted_episode_logits(self, query: Tensor, supports: Tensor, support_masks: Tensor,
                               pseudo_queries: Optional[Tensor], pseudo_masks: Optional[Tensor]) -> Tensor:
        """:meth:`forward_episode` after each episode adapted its own copy of the head (:attr:`episode_adapter`).

        Per episode: one no-grad backbone pass over its V pseudo-queries, K supports and query; then the
        adapter's steps, each on the loss of :meth:`loss` for that step's pseudo-queries against the K
        supports, under the episode's head weights (``torch.func.functional_call``); then the query against
        the supports under the adapted weights. The model's own weights do not change.

        Args:
            query, supports, support_masks: as :meth:`forward_episode`.
            pseudo_queries: [B, V, 3, H, W] normalised pseudo-queries (``None`` without steps).
            pseudo_masks: [B, V, H, W] their labels.

        Returns:
            [B, K, 2, h, w] logits.
        """
        adapter = self.episode_adapter
        adapter.check_queries(pseudo_queries)
        names = adapter.parameter_names(self)

        def episode(e: int, model: 'HypercorrSegmentor') -> Tensor:
            views = None if pseudo_queries is None else (pseudo_queries[e], pseudo_masks[e])
            return model._adapt_episode(adapter, names, query[e:e + 1], supports[e], support_masks[e], views)

        return torch.cat(adapter.map_episodes(self, episode, supports.shape[0], supports.device))

    def _adapt_episode(self, adapter: EpisodeAdapter, names: List[str], query: Tensor, supports: Tensor,
                       support_masks: Tensor, views: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
        """One episode of :meth:`adapted_episode_logits` (query [1, 3, H, W], supports [K, 3, H, W], support_masks
        [K, H, W], views: pseudo-queries [V, 3, H, W] and labels [V, H, W]) -> [1, K, 2, h, w] logits."""
        k = supports.shape[0]
        # query first, as forward_episode: an episode alone without steps computes exactly what predict does
        images = torch.cat([query, supports] + ([] if views is None else [views[0].to(supports.dtype)]))
        with torch.no_grad():
            feats = self.extract_feat(images)
        support_feats = [f[1:1 + k] for f in feats]

        def logits(params: Dict[str, Tensor], rows: List[int]) -> Tensor:
            """[len(rows), K, 2, h, w]: images ``rows`` against the K supports under ``params``."""
            weights = {n[len('decode_head.'):]: w for n, w in params.items()}

            def head(*args: Tensor) -> Tensor:
                return functional_call(self.decode_head, weights, args)

            n = len(rows)
            return shot_logits(head, [f[rows] for f in feats], [f[None].expand(n, *f.shape) for f in support_feats],
                               support_masks[None].expand(n, *support_masks.shape))

        def step_loss(params: Dict[str, Tensor], step_views: List[int]) -> Tensor:
            out = self._upsample(logits(params, [1 + k + i for i in step_views]), supports.shape[-2:])
            return sum(self.decode_head.loss(out, views[1][step_views]).values())

        params = adapter.optimize(adapter.episode_params(self, names), step_loss)
        with torch.no_grad():
            return logits(params, [0])

    def _upsample(self, logits: Tensor, size: Tuple[int, int]) -> Tensor:
        """[B, K, 2, h, w] -> [B, K, 2, *size], bilinear."""
        out = F.interpolate(logits.flatten(0, 1), size, mode='bilinear', align_corners=self.decode_head.align_corners)
        return out.unflatten(0, logits.shape[:2])

    def _episode_logits(self, inputs: Tensor, data_samples: SampleList) -> Tensor:
        """[B, K, 2, h, w] logits of every shot, after per-episode adaptation when ``test_cfg.episode_adaptation``
        is set."""
        supports, masks, batch = self._episode_tensors(inputs, data_samples)
        queries = self._pseudo_queries(batch)
        if queries is None:
            return self.forward_episode(inputs, supports, masks)
        return self.adapted_episode_logits(inputs, supports, masks, *queries)

    def encode_decode(self, inputs: Tensor, data_samples: SampleList) -> Tensor:
        """[B, K, 2, H, W] logits of every shot at the input size (adapted as :meth:`predict`)."""
        return self._upsample(self._episode_logits(inputs, data_samples), inputs.shape[-2:])

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """The head's loss terms, one ``loss_<name>`` key each."""
        supports, masks, _ = self._episode_tensors(inputs, data_samples)
        logits = self._upsample(self.forward_episode(inputs, supports, masks), inputs.shape[-2:])
        return self.decode_head.loss(logits, self._query_masks(data_samples))

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Adds ``seg_logits`` [2, H, W] and ``pred_sem_seg`` [1, H, W] (the K-shot vote) to every sample."""
        logits = self._episode_logits(inputs, data_samples)
        resize = self.test_cfg.get('resize_to_original', False)
        for shot_logits, sample in zip(logits, data_samples):
            size = sample.metainfo['ori_shape'][:2] if resize and 'ori_shape' in sample.metainfo else inputs.shape[-2:]
            seg_logits, pred = self.decode_head.predict_by_shots(self._upsample(shot_logits[None], size))
            sample.set_data(dict(seg_logits=PixelData(data=seg_logits[0]), pred_sem_seg=PixelData(data=pred)))
        return data_samples

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        """``tensor`` mode: [B, K, 2, H, W] logits of every shot."""
        return self.encode_decode(inputs, data_samples)


def shot_logits(head: ShotHead, query_feats: Sequence[Tensor], support_feats: Sequence[Tensor],
                support_masks: Tensor) -> Tensor:
    """Logits of every (query, shot) pair, one shot at a time (as the official code: the 4D tensors of K shots at
    once would take K times the memory).

    Args:
        head: the one-shot head, ``(query maps, support maps, support mask) -> [B, 2, h, w]``.
        query_feats: maps [B, C_l, h_l, w_l].
        support_feats: maps [B, K, C_l, h_l, w_l].
        support_masks: [B, K, H, W].

    Returns:
        [B, K, 2, h, w].
    """
    return torch.stack([head(query_feats, [f[:, i] for f in support_feats], support_masks[:, i])
                        for i in range(support_masks.shape[1])], 1)
