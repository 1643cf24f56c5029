"""FewShotDataSample declares the episode fields; FewShotSampleList stacks a batch of them once."""
import copy

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseDataPreprocessor
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from ifa_mmseg.datasets import fewshot_collate
from ifa_mmseg.structures import EPISODE_FIELDS, FewShotDataSample, FewShotSampleList

from .helpers.episodes import packed_episodes

MEAN = torch.tensor([123.675, 116.28, 103.53])[:, None, None]
STD = torch.tensor([58.395, 57.12, 57.375])[:, None, None]


def items(batch: int = 3, shot: int = 2, size: int = 16, views: int = 0, seed: int = 0):
    """Packed dataset items (one episode each), with ``views`` pseudo-queries per episode."""
    packed = packed_episodes(batch, shot, size, seed)
    out = []
    for i, (query, sample) in enumerate(zip(packed['inputs'], packed['data_samples'])):
        sample.set_metainfo(dict(img_path=f'query_{i}.jpg'))
        if views:
            sample.adapt_imgs = sample.support_imgs[:1].flip(-1).repeat(views, 1, 1, 1)
            sample.adapt_masks = sample.support_masks[:1].flip(-1).repeat(views, 1, 1)
        out.append(dict(inputs=query, data_samples=sample))
    return out


def test_fields_are_declared_tensors():
    sample = FewShotDataSample()
    for field in EPISODE_FIELDS:
        with pytest.raises(AssertionError, match='should be a'):
            setattr(sample, field, np.zeros((1, 4, 4), dtype=np.uint8))
        assert not hasattr(sample, field)
        setattr(sample, field, torch.zeros(1, 4, 4, dtype=torch.uint8))
        assert field in sample
    assert sorted(sample.keys()) == sorted(EPISODE_FIELDS)  # the public names, as SegDataSample's gt_sem_seg
    del sample.adapt_imgs
    assert 'adapt_imgs' not in sample and isinstance(sample.to('cpu'), FewShotDataSample)


def test_rows_are_views_of_the_batch():
    batch = fewshot_collate(items(views=4))
    samples = batch['data_samples']
    assert isinstance(samples, FewShotSampleList) and isinstance(samples[0], FewShotDataSample)
    assert samples.support_imgs.shape == (3, 2, 3, 16, 16) and samples.adapt_masks.shape == (3, 4, 16, 16)
    for field in EPISODE_FIELDS:
        stacked = getattr(samples, field)
        for i, sample in enumerate(samples):
            row = getattr(sample, field)
            assert row.untyped_storage().data_ptr() == stacked.untyped_storage().data_ptr()
            assert row.data_ptr() == stacked[i].data_ptr() and row._base is stacked  # a view, not a copy
    samples.support_imgs.zero_()
    assert not samples[2].support_imgs.any()
    assert FewShotSampleList.of(samples) is samples


def test_given_batch_tensors_are_not_copied():
    packed = packed_episodes(2, 3, 16)
    imgs, masks = torch.zeros(2, 3, 3, 16, 16), torch.ones(2, 3, 16, 16, dtype=torch.long)
    samples = FewShotSampleList(packed['data_samples'], support_imgs=imgs, support_masks=masks)
    assert samples.support_imgs is imgs and samples[1].support_masks._base is masks and samples.adapt_imgs is None
    with pytest.raises(ValueError, match='one row per episode'):
        FewShotSampleList(packed['data_samples'], support_imgs=imgs[:1], support_masks=masks[:1])
    with pytest.raises(ValueError, match='adapt_masks'):
        FewShotSampleList(packed['data_samples'], support_imgs=imgs, support_masks=masks, adapt_imgs=imgs)


def test_stacking_errors_name_the_query():
    episodes = items()
    episodes[2]['data_samples'].support_masks = episodes[2]['data_samples'].support_masks[:1]
    with pytest.raises(ValueError, match=r'support_masks of query_2.jpg is \(1, 16, 16\) but \(2, 16, 16\) in the '
                                         'first episode'):
        fewshot_collate(episodes)
    episodes = items(views=2)
    del episodes[1]['data_samples'].adapt_imgs
    with pytest.raises(ValueError, match='the data sample of query_1.jpg has no adapt_imgs'):
        fewshot_collate(episodes)


def test_a_sample_given_another_tensor_is_restacked():
    samples = fewshot_collate(items())['data_samples']
    samples[1].support_imgs = torch.full_like(samples[1].support_imgs, 7)
    again = FewShotSampleList.of(samples)
    assert again is not samples and torch.equal(again.support_imgs[1], samples[1].support_imgs)


@pytest.mark.parametrize('views', [0, 4])
def test_preprocessor_gives_the_per_sample_values(views):
    """fewshot_collate and pseudo_collate batches both give what normalising each sample alone gave."""
    episodes = items(views=views)
    preprocessor = MODELS.build(dict(type='FewShotSegDataPreProcessor'))
    ours = preprocessor(fewshot_collate(copy.deepcopy(episodes)))
    plain = preprocessor(pseudo_collate(copy.deepcopy(episodes)))
    for data in (ours, plain):
        samples = data['data_samples']
        assert isinstance(samples, FewShotSampleList)
        for i, (item, sample) in enumerate(zip(episodes, samples)):
            raw = item['data_samples']
            assert torch.equal(data['inputs'][i], (item['inputs'].float() - MEAN) / STD)
            assert torch.equal(sample.support_imgs, (raw.support_imgs.float() - MEAN) / STD)
            assert sample.support_imgs._base is samples.support_imgs  # the model reads the rows' batch
            assert torch.equal(sample.support_masks, raw.support_masks) and sample.support_masks.dtype == torch.uint8
            assert torch.equal(sample.gt_sem_seg.data, raw.gt_sem_seg.data) and sample.metainfo == raw.metainfo
            if views:
                assert torch.equal(sample.adapt_imgs, (raw.adapt_imgs.float() - MEAN) / STD)
                assert torch.equal(sample.adapt_masks, raw.adapt_masks)
            else:
                assert samples.adapt_imgs is None and 'adapt_imgs' not in sample


def test_preprocessor_moves_each_batch_tensor_once(monkeypatch):
    """A FewShotSampleList goes to the device as its batch tensors, not as one tensor per sample and field."""
    batch = fewshot_collate(items(views=2))
    rows = {id(getattr(s, f)) for s in batch['data_samples'] for f in EPISODE_FIELDS}
    moved, original_to = [], torch.Tensor.to

    def recording_to(self, *args, **kwargs):
        moved.append(id(self))
        return original_to(self, *args, **kwargs)

    preprocessor = MODELS.build(dict(type='FewShotSegDataPreProcessor'))
    monkeypatch.setattr(torch.Tensor, 'to', recording_to)
    preprocessor(batch)
    monkeypatch.undo()
    assert all(id(getattr(batch['data_samples'], f)) in moved for f in EPISODE_FIELDS)
    assert not rows & set(moved)
    assert batch['data_samples'][0].support_imgs.dtype == torch.uint8  # the loader's samples keep their rows
    assert FewShotSampleList.of(batch['data_samples']) is batch['data_samples']


def test_batched_normalisation_of_a_batch_tensor():
    """The accelerator route takes the batch tensor as it is, and never normalises the caller's in place."""
    preprocessor = MODELS.build(dict(type='FewShotSegDataPreProcessor'))
    imgs = torch.randint(0, 256, (3, 2, 3, 8, 8), dtype=torch.uint8)
    floats = imgs.float()
    assert torch.equal(preprocessor._normalize_batched(imgs), preprocessor._normalize(imgs))
    assert torch.equal(preprocessor._normalize_batched(floats), preprocessor._normalize(imgs))
    assert torch.equal(floats, imgs.float())


def test_mmengine_cast_data_keeps_a_consistent_batch():
    """mmengine's own preprocessor rebuilds the list with ``type(data)(samples)``: the constructor stacks them."""
    batch = fewshot_collate(items())
    cast = BaseDataPreprocessor()(batch)['data_samples']
    assert isinstance(cast, FewShotSampleList) and FewShotSampleList.of(cast) is cast
    assert torch.equal(cast.support_imgs, batch['data_samples'].support_imgs)


def test_a_plain_list_gives_the_collated_logits(root):
    cfg = Config.fromfile(f'{root}/configs/_base_/models/ifa_r18_demo.py').model
    cfg.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    episodes = items(batch=2, shot=2, size=32, seed=4)
    data = model.data_preprocessor(fewshot_collate(copy.deepcopy(episodes)))
    by_hand = [SegDataSample(metainfo=s.metainfo) for s in data['data_samples']]  # mmseg's own sample type
    for sample, collated in zip(by_hand, data['data_samples']):
        sample.support_imgs, sample.support_masks = collated.support_imgs.clone(), collated.support_masks.clone()
    with torch.no_grad():
        collated = model(data['inputs'], data['data_samples'], mode='tensor')
        plain = model(data['inputs'], by_hand, mode='tensor')
        predicted = model.predict(data['inputs'], by_hand)
    assert set(plain) == set(collated) and all(torch.equal(plain[k], collated[k]) for k in collated)
    assert predicted is by_hand and torch.equal(by_hand[1].seg_logits.data, collated['q_refine'][1])
