"""Normalises and batches episodes: query images plus the supports in each sample."""
from typing import Any, Dict, Optional, Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor
from mmseg.registry import MODELS
from torch import Tensor

from ..structures import IMAGE_FIELDS, FewShotSampleList


@MODELS.register_module()
class FewShotSegDataPreProcessor(BaseDataPreprocessor):
    """Stack and normalise query images and support images alike.

    Inputs are the packed query images ([3, H, W] each, all of one size as the
    episode pipelines resize to a fixed size, or the [B, 3, H, W] batch of
    ``fewshot_collate``); the data samples carry ``support_imgs`` [K, 3, H, W] and
    ``support_masks`` [K, H, W] (:class:`~ifa_mmseg.structures.FewShotDataSample`). After
    this step ``inputs`` is a float [B, 3, H, W] batch and ``data_samples`` a
    :class:`~ifa_mmseg.structures.FewShotSampleList` whose ``support_imgs`` (and
    ``adapt_imgs``, the pseudo-queries of per-episode adaptation, when the samples carry
    them) are the normalised float batch, each sample holding its row.

    Images travel to the model's device as they come (uint8 from the loading
    pipelines: a quarter of the float32 bytes) and are cast and normalised there:
    the batch tensors of a ``FewShotSampleList`` (``fewshot_collate``) move once each,
    the samples of a plain list (``pseudo_collate``) one by one and are stacked on the
    device. On CPU each image is normalised into its slot of the batch; on an accelerator
    in a few batch-wide kernels (:meth:`_normalize_batched`), with the same values.

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

    def _normalize(self, imgs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Images [..., 3, H, W] (uint8 or float, one shape; a batch tensor or a list) -> one normalised float32 batch.

        Each image is cast into its slot of the preallocated batch and normalised there in
        place: the values of ``(x.float() - mean) / std`` without batch-sized temporaries.
        """
        if imgs[0].device.type != 'cpu':
            return self._normalize_batched(imgs)
        out = torch.empty((len(imgs), *imgs[0].shape), dtype=torch.float32, device=imgs[0].device)
        for dst, img in zip(out, imgs):
            dst.copy_(img.flip(-3) if self.bgr_to_rgb else img).sub_(self.mean).div_(self.std)
        return out

    def _normalize_batched(self, imgs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """:meth:`_normalize` as a few batch-wide kernels (cast, subtract, divide; a list stacked first),
        for accelerators."""
        batch = imgs if isinstance(imgs, Tensor) else torch.stack(list(imgs))
        if self.bgr_to_rgb:
            batch = batch.flip(-3)
        # .to() would return a float32 batch tensor itself: copy it rather than normalise the caller's in place
        return batch.to(torch.float32, copy=batch is imgs).sub_(self.mean).div_(self.std)

    def cast_data(self, data: Any) -> Any:
        """mmengine's ``cast_data``, but a :class:`FewShotSampleList` moves its batch tensors once each."""
        if isinstance(data, FewShotSampleList):
            return data.to(self.device, non_blocking=self._non_blocking)
        return super().cast_data(data)

    def forward(self, data: Dict[str, Any], training: bool = False) -> Dict[str, Any]:
        data = self.cast_data(data)
        samples = FewShotSampleList.of(data['data_samples'])  # a plain list is stacked here, on the device
        normalised = {field: self._normalize(samples.batch[field]) for field in IMAGE_FIELDS if field in samples.batch}
        return dict(inputs=self._normalize(data['inputs']),
                    data_samples=FewShotSampleList(samples, **{**samples.batch, **normalised}))
