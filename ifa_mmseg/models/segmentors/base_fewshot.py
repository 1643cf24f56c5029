"""What every episodic segmentor shares: strict checkpoint loading and the one place episodes are read."""
from typing import List, Tuple

import torch
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.utils import OptConfigType, OptMultiConfig, SampleList
from torch import Tensor

from ..utils.state_check import check_loaded_state


class FewShotSegmentor(BaseSegmentor):
    """Base of the few-shot segmentors (:class:`IFASegmentor`, :class:`HypercorrSegmentor`).

    Each data sample is one episode: ``inputs`` holds the query images, and every sample carries
    ``support_imgs`` [K, 3, H, W] and ``support_masks`` [K, H, W] (normalised by
    :class:`FewShotSegDataPreProcessor`) and, for training, the query mask in ``gt_sem_seg``.

    Args:
        strict_load: refuse a checkpoint that lacks any of the model's weights and buffers or has
            keys that fit none (every loader: ``load_from``, ``init_model``, the inferencer);
            ``False`` loads what fits. Non-finite values are refused either way
            (:func:`~ifa_mmseg.models.utils.check_loaded_state`).
    """

    def __init__(self,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None,
                 strict_load: bool = True) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.strict_load = strict_load
        self.register_load_state_dict_post_hook(check_loaded_state)

    def _episode_tensors(self, inputs: Tensor, data_samples: SampleList) -> Tuple[Tensor, Tensor]:
        """The samples' supports [B, K, 3, H, W] (in the dtype of ``inputs``) and support masks [B, K, H, W]."""
        if data_samples is None or not all(hasattr(s, 'support_imgs') for s in data_samples):
            raise ValueError(f'{type(self).__name__} needs data samples carrying support_imgs and support_masks '
                             '(pack episodes with PackFewShotInputs and FewShotSegDataPreProcessor)')
        supports = torch.stack([s.support_imgs for s in data_samples]).to(inputs.dtype)
        masks = torch.stack([s.support_masks for s in data_samples])
        return supports, masks

    @staticmethod
    def _query_masks(data_samples: SampleList) -> Tensor:
        """[B, H, W] query labels (``gt_sem_seg``)."""
        return torch.stack([s.gt_sem_seg.data[0] for s in data_samples])

    def aug_test(self, inputs: Tensor, data_samples: SampleList) -> List:
        raise NotImplementedError('test-time augmentation is not part of the few-shot protocols')
