"""fewshot_collate: batch tensors (shared memory in workers), preprocessed as with pseudo_collate (issue 3, item 8)."""
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS
from mmseg.registry import DATASETS, MODELS
from torch.utils.data import DataLoader

from ifa_mmseg.datasets import fewshot_collate
from tests.helpers import fake_layouts

SMALL = [dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask'), dict(type='FewShotResize', scale=(24, 20))]


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('collate'))
    fake_layouts.write_deepglobe(root)
    return DATASETS.build(dict(type='DeepglobeDataset', data_root=root, shot=3, num_episodes=6, pipeline=SMALL))


def test_registered_and_same_model_side_tensors_as_pseudo_collate(dataset):
    assert FUNCTIONS.get('fewshot_collate') is fewshot_collate
    items = [dataset[i] for i in range(4)]
    batch = fewshot_collate([dataset[i] for i in range(4)])
    assert batch['inputs'].shape == (4, 3, 20, 24) and batch['inputs'].dtype == torch.uint8
    storages = {s.support_imgs.untyped_storage().data_ptr() for s in batch['data_samples']}
    assert len(storages) == 1  # every sample holds a view of one batch tensor
    preprocessor = MODELS.build(dict(type='FewShotSegDataPreProcessor'))
    ours, reference = preprocessor(batch), preprocessor(pseudo_collate(items))
    assert torch.equal(ours['inputs'], reference['inputs'])
    for a, b in zip(ours['data_samples'], reference['data_samples']):
        assert a.metainfo == b.metainfo
        for key in ('support_imgs', 'support_masks'):
            assert torch.equal(a.get(key), b.get(key)) and a.get(key).dtype == b.get(key).dtype
        assert torch.equal(a.gt_sem_seg.data, b.gt_sem_seg.data) and a.gt_sem_seg.data.dtype == torch.int64


def test_workers_give_the_single_process_batches(dataset):
    def episodes(workers):
        return [(s.episode, s.support_paths, s.support_imgs.sum().item(), s.gt_sem_seg.data.sum().item(),
                 q.sum().item())
                for batch in DataLoader(dataset, batch_size=4, num_workers=workers, collate_fn=fewshot_collate)
                for q, s in zip(batch['inputs'], batch['data_samples'])]

    assert episodes(2) == episodes(0)


def test_sizes_must_agree_within_a_batch(dataset):
    items = [dataset[0], dataset[1]]
    sample = items[1]['data_samples']
    sample.support_imgs = sample.support_imgs[:2]
    with pytest.raises(ValueError, match='support_imgs of .*_sat_.*jpg is \\(2, 3, 20, 24\\)'):
        fewshot_collate(items)
