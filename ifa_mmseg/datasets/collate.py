"""Collating packed episodes into batch tensors, made in shared memory inside DataLoader workers."""
from typing import List, Sequence

import torch
from mmengine.registry import FUNCTIONS
from mmseg.structures import SegDataSample
from torch.utils.data import default_collate


def _stack(tensors: List[torch.Tensor], what: str, samples: List[SegDataSample]) -> torch.Tensor:
    """``default_collate`` of equal-shaped tensors, or an error naming the first query that differs."""
    for tensor, sample in zip(tensors, samples):
        if tensor.shape != tensors[0].shape:
            raise ValueError(f'{what} of {sample.metainfo.get("img_path")} is {tuple(tensor.shape)} but '
                             f'{tuple(tensors[0].shape)} in the first episode of the batch: resize every image '
                             f'to one size and use one shot count per batch')
    return default_collate(tensors)


@FUNCTIONS.register_module()
def fewshot_collate(batch: Sequence[dict]) -> dict:
    """Collate :class:`PackFewShotInputs` outputs: ``dict(inputs=[B, 3, H, W], data_samples=[...])``.

    As with ``pseudo_collate`` the data samples stay a list, but the query images, the
    support images, the support masks, the query masks (and the pseudo-queries of
    per-episode adaptation) of the batch are each stacked into one tensor, and every
    sample holds views of its row of them. Inside a
    DataLoader worker ``default_collate`` makes the stacks in shared memory, so a batch
    reaches the main process as four tensors rather than four per episode. Every
    episode of a batch must have the same image size and shot count (as
    ``FewShotSegDataPreProcessor`` needs).
    """
    samples = [item['data_samples'] for item in batch]
    inputs = _stack([item['inputs'] for item in batch], 'the query image', samples)
    fields = ['support_imgs', 'support_masks']
    if any('adapt_imgs' in sample for sample in samples):
        fields += ['adapt_imgs', 'adapt_masks']
    for field in fields:
        rows = _stack([sample.get(field) for sample in samples], field, samples)
        for sample, row in zip(samples, rows):
            setattr(sample, field, row)
    if all('gt_sem_seg' in sample for sample in samples):
        rows = _stack([sample.gt_sem_seg.data for sample in samples], 'the query mask', samples)
        for sample, row in zip(samples, rows):
            sample.gt_sem_seg.data = row
    return dict(inputs=inputs, data_samples=samples)
