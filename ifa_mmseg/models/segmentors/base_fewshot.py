"""What every episodic segmentor shares: strict checkpoint loading, the one place episodes are read, and the
settings of per-episode adaptation."""
from typing import List, Optional, Tuple

import torch
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, SampleList
from torch import Tensor

from ...structures import FewShotSampleList
from ..adaptation import EpisodeAdapter
from ..utils.state_check import check_loaded_state


class FewShotSegmentor(BaseSegmentor):
    """Base of the few-shot segmentors (:class:`IFASegmentor`, :class:`HypercorrSegmentor`).

    Each data sample is one episode (:class:`~ifa_mmseg.structures.FewShotDataSample`): ``inputs``
    holds the query images, and every sample carries ``support_imgs`` [K, 3, H, W] and
    ``support_masks`` [K, H, W] (normalised by :class:`FewShotSegDataPreProcessor`) and, for
    training, the query mask in ``gt_sem_seg``. The models read the batch tensors of the
    :class:`~ifa_mmseg.structures.FewShotSampleList` that the data preprocessor gives; any other
    list of samples is stacked once by the same constructor (:meth:`_episode_tensors`).

    Args:
        backbone, decode_head: the backbone and the head, built here.
        train_cfg, test_cfg: kept as given (``test_cfg.episode_adaptation`` is read by
            :meth:`set_episode_adaptation`, which subclasses call once built).
        pretrained: backbone checkpoint, as mmseg segmentors take it (it becomes the
            backbone's ``init_cfg``); ``mmseg.apis.init_model`` passes ``None``.
        strict_load: refuse a checkpoint that lacks any of the model's weights and buffers or has
            keys that fit none (every loader: ``load_from``, ``init_model``, the inferencer);
            ``False`` loads what fits. Non-finite values are refused either way
            (:func:`~ifa_mmseg.models.utils.check_loaded_state`).
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
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.strict_load = strict_load
        self.register_load_state_dict_post_hook(check_loaded_state)
        if pretrained is not None:
            backbone = dict(backbone, init_cfg=dict(type='Pretrained', checkpoint=pretrained))
        self.backbone = MODELS.build(backbone)
        self.decode_head = MODELS.build(decode_head)
        self.train_cfg = train_cfg
        self.test_cfg = dict(test_cfg or {})

    def set_episode_adaptation(self, settings: Optional[dict]) -> None:
        """Adapt a copy of the weights per test episode with these settings (``test_cfg.episode_adaptation``),
        or not with ``None``; a model built before its config was resolved receives them here."""
        if settings:
            self.test_cfg['episode_adaptation'] = settings
        else:
            self.test_cfg.pop('episode_adaptation', None)
        self.episode_adapter = EpisodeAdapter.from_settings(settings) if settings else None
        if self.episode_adapter is not None:
            self.check_episode_adapter(self.episode_adapter)  # refuse now, not at the first episode

    def check_episode_adapter(self, adapter: EpisodeAdapter) -> None:
        """Raise ``ValueError`` if this model cannot adapt with ``adapter`` (e.g. unknown parameter names)."""
        adapter.parameter_names(self)

    def _episode_tensors(self, inputs: Tensor,
                         data_samples: SampleList) -> Tuple[Tensor, Tensor, FewShotSampleList]:
        """The batch's supports [B, K, 3, H, W] (in the dtype of ``inputs``), their masks [B, K, H, W], and the
        batch (:meth:`FewShotSampleList.of`: the data preprocessor's as it is, any other list stacked once)."""
        if not data_samples:
            raise ValueError(f'{type(self).__name__} needs data samples carrying support_imgs and support_masks '
                             '(pack episodes with PackFewShotInputs and FewShotSegDataPreProcessor)')
        batch = FewShotSampleList.of(data_samples)
        return batch.support_imgs.to(inputs.dtype), batch.support_masks, batch

    @staticmethod
    def _query_masks(data_samples: SampleList) -> Tensor:
        """[B, H, W] query labels (``gt_sem_seg``)."""
        return torch.stack([s.gt_sem_seg.data[0] for s in data_samples])

    def _pseudo_queries(self, batch: FewShotSampleList) -> Optional[Tuple[Optional[Tensor], Optional[Tensor]]]:
        """The batch's pseudo-queries [B, V, 3, H, W] and masks [B, V, H, W] for per-episode adaptation
        (``None, None`` when it takes no step), or ``None`` without per-episode adaptation.

        Raises:
            ValueError: the samples carry pseudo-queries but the model does not adapt, or
                the other way round (the resolver sets both from ``adaptation_labels``).
        """
        carried = batch.adapt_imgs is not None  # by every sample of the batch, or by none
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
        return batch.adapt_imgs, batch.adapt_masks

    def aug_test(self, inputs: Tensor, data_samples: SampleList) -> List:
        raise NotImplementedError('test-time augmentation is not part of the few-shot protocols')
