"""Collating packed episodes into batch tensors, made in shared memory inside DataLoader workers."""
from typing import Sequence

from mmengine.registry import FUNCTIONS

from ..structures import FewShotSampleList, stack_rows


@FUNCTIONS.register_module()
def fewshot_collate(batch: Sequence[dict]) -> dict:
    """Collate :class:`PackFewShotInputs` outputs: ``dict(inputs=[B, 3, H, W], data_samples=FewShotSampleList)``.

    As with ``pseudo_collate`` the data samples stay a list, but the query images, the
    query masks and the episode fields (supports, and the pseudo-queries of per-episode
    adaptation: :class:`~ifa_mmseg.structures.FewShotSampleList`) of the batch are each
    stacked once into one tensor, and every sample holds views of its row of them. Inside a
    DataLoader worker ``default_collate`` makes the stacks in shared memory, so a batch
    reaches the main process as four tensors rather than four per episode. Every
    episode of a batch must have the same image size and shot count (as
    ``FewShotSegDataPreProcessor`` needs).
    """
    samples = [item['data_samples'] for item in batch]
    inputs = stack_rows([item['inputs'] for item in batch], 'the query image', samples)
    samples = FewShotSampleList(samples)
    if all('gt_sem_seg' in sample for sample in samples):
        rows = stack_rows([sample.gt_sem_seg.data for sample in samples], 'the query mask', samples)
        for sample, row in zip(samples, rows):
            sample.gt_sem_seg.data = row
    return dict(inputs=inputs, data_samples=samples)
