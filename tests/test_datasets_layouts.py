"""The five datasets read their published layouts; episode tables are seeded and fixed (issue 3, items 1, 2)."""
import csv
import os
from collections import Counter

import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, pseudo_collate
from mmseg.registry import DATASETS
from torch.utils.data import DataLoader

from ifa_mmseg.datasets.layout import SPLITS_DIR, read_lines
from tests.helpers import fake_layouts

SMALL = [dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask'), dict(type='FewShotResize', scale=(24, 20))]


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('layouts'))
    fake_layouts.write_deepglobe(root)
    fake_layouts.write_isic(root)
    fake_layouts.write_chestxray(root, size=(30, 26))
    fake_layouts.write_fss1000(root, fake_layouts.fss_classes('test')[:3])
    with open(os.path.join(root, 'three.txt'), 'w') as f:
        f.write(''.join(c + '\n' for c in fake_layouts.fss_classes('test')[:3]))
    os.makedirs(os.path.join(root, 'VOC2012', 'JPEGImages'))
    os.makedirs(os.path.join(root, 'VOC2012', 'SegmentationClassAug'))
    return root


def build(root, **cfg):
    return DATASETS.build(dict(cfg, data_root=root))


def table(ds):
    return [(e['class_id'], e['query']['img_path'], [s['img_path'] for s in e['supports']])
            for e in (ds.get_data_info(i) for i in range(len(ds)))]


# ------------------------------------------------------------------ shipped lists (item 1)
def test_shipped_split_lists():
    trn = [len(read_lines(SPLITS_DIR / 'pascal' / 'trn' / f'fold{f}.txt')) for f in range(4)]
    val = [len(read_lines(SPLITS_DIR / 'pascal' / 'val' / f'fold{f}.txt')) for f in range(4)]
    assert trn == [2286, 3425, 5883, 2086] and sum(trn) == 13680
    assert val == [346, 451, 725, 346]
    pairs = [line for f in range(4) for line in read_lines(SPLITS_DIR / 'pascal' / 'trn' / f'fold{f}.txt')]
    assert len(set(pairs)) == len(pairs)  # an image appears once per listed class
    fss = {s: set(read_lines(SPLITS_DIR / 'fss' / f'{s}.txt')) for s in ('trn', 'val', 'test')}
    assert [len(fss[s]) for s in ('trn', 'val', 'test')] == [520, 240, 240]
    assert not (fss['trn'] & fss['val'] or fss['trn'] & fss['test'] or fss['val'] & fss['test'])
    with open(SPLITS_DIR / 'isic' / 'class_id.csv', newline='') as f:
        counts = Counter(row['Class'] for row in csv.DictReader(f))
    assert counts == dict(nevus=1867, seborrheic_keratosis=208, melanoma=519)


def test_pascal_folds(root):
    ds = build(root, type='Pascal5iDataset', fold=4, split='trn')
    assert len(ds) == 13680 and ds.metainfo['classes'][14] == 'person'
    first = ds.get_data_info(0)
    assert first['class_id'] == 0 and first['query']['img_path'].endswith(os.path.join('JPEGImages', '2007_000032.jpg'))
    assert first['query']['seg_map_path'].endswith(os.path.join('SegmentationClassAug', '2007_000032.png'))
    assert {c for c, _, _ in table(ds)} == set(range(20))
    fold0 = build(root, type='Pascal5iDataset', fold=0, split='trn')
    assert len(fold0) == 3425 + 5883 + 2086 and {c for c, _, _ in table(fold0)} == set(range(5, 20))
    val = build(root, type='Pascal5iDataset', fold=1, split='val')
    assert len(val) == 1000 and {c for c, _, _ in table(val)} == set(range(5, 10))
    assert table(val)[451][1] == table(val)[0][1]  # the official loader cycles through its 451 pairs
    with pytest.raises(ValueError, match='no validation list'):
        build(root, type='Pascal5iDataset', fold=4, split='val')


def test_target_layouts(root):
    dg = build(root, type='DeepglobeDataset')
    assert [len(p) for p in dg.class_pools] == [6, 7, 6, 8, 6, 7]
    assert os.path.relpath(dg.class_pools[2][0]['img_path'], root).split(os.sep)[:5] == [
        'Deepglobe', '04_train_cat', '3', 'test', 'origin']
    for pool in dg.class_pools:
        for p in pool:
            stem, cell = os.path.basename(p['img_path'])[:-4].split('_sat_')
            assert p['seg_map_path'] == os.path.join(os.path.dirname(os.path.dirname(p['img_path'])), 'groundtruth',
                                                     f'{stem}_mask_{cell}.png')
    isic = build(root, type='ISICDataset')
    assert [len(p) for p in isic.class_pools] == [7, 6, 8]
    p = isic.class_pools[1][0]
    assert p['seg_map_path'] == os.path.join(root, 'ISIC', 'ISIC2018_Task1_Training_GroundTruth',
                                             os.path.basename(p['img_path'])[:-4] + '_segmentation.png')
    lung = build(root, type='ChestXrayDataset')
    assert len(lung.class_pools) == 1 and len(lung.class_pools[0]) == 8
    assert all(os.path.basename(p['seg_map_path']) == os.path.basename(p['img_path'])[:-4] + '_mask.png'
               for p in lung.class_pools[0])
    for ds, n in ((dg, 6), (isic, 3), (lung, 1)):
        assert len(ds) == 600 and [c for c, _, _ in table(ds)][:2 * n] == list(range(n)) * 2


def test_fss1000_every_image_once(root):
    ds = build(root, type='FSS1000Dataset', ann_file='three.txt')
    names = fake_layouts.fss_classes('test')[:3]
    assert ds.metainfo['classes'] == tuple(names) and len(ds) == 30
    queries = [q for _, q, _ in table(ds)]
    assert len(set(queries)) == 30
    assert [os.path.basename(q) for q in queries[:3]] == ['1.jpg', '10.jpg', '2.jpg']  # string order
    assert all(os.path.dirname(s) == os.path.dirname(q) for _, q, sup in table(ds) for s in sup)


# ----------------------------------------------------------------- episode tables (item 2)
@pytest.mark.parametrize('sampling', ['standard', 'official'])
def test_tables_are_seeded(root, sampling):
    a, b, c = (build(root, type='ISICDataset', shot=5, seed=s, episode_sampling=sampling) for s in (7, 7, 8))
    assert table(a) == table(b) and table(a) != table(c)
    if sampling == 'standard':
        for _, q, sup in table(a):
            assert len(set(sup)) == 5 and q not in sup
    assert all(q not in sup for _, q, sup in table(a))


def test_official_mode_reproduces_legacy_global_calls(root):
    """The official sequence is np.random.seed + np.random.choice(list, 1, replace=False), in index order."""
    ds = build(root, type='DeepglobeDataset', shot=2, seed=11, episode_sampling='official', num_episodes=12)
    np.random.seed(11)
    expected = []
    for i in range(12):
        pool = [p['img_path'] for p in ds.class_pools[i % 6]]
        query = np.random.choice(pool, 1, replace=False)[0]
        supports = []
        while len(supports) < 2:
            s = np.random.choice(pool, 1, replace=False)[0]
            if s != query:
                supports.append(s)
        expected.append((i % 6, query, supports))
    assert table(ds) == expected


def loader_episodes(ds, **kwargs):
    out = []
    for batch in DataLoader(ds, collate_fn=pseudo_collate, **kwargs):
        for inputs, sample in zip(batch['inputs'], batch['data_samples']):
            out.append((sample.episode, sample.img_path, tuple(sample.support_paths), inputs.sum().item(),
                        sample.support_masks.sum().item()))
    return out


def test_episodes_independent_of_batch_workers_and_world_size(root, monkeypatch):
    ds = build(root, type='DeepglobeDataset', shot=2, num_episodes=8, pipeline=SMALL)
    single = loader_episodes(ds, batch_size=1, num_workers=0)
    assert [e[0] for e in single] == list(range(8))
    assert loader_episodes(ds, batch_size=3, num_workers=2) == single
    assert [(e['episode'], e['query']['img_path']) for e in (ds.get_data_info(i) for i in range(8))] == \
        [(e[0], e[1]) for e in single]
    # two ranks of a world of 2 each see their share of the same table
    seen = {}
    for rank in (0, 1):
        monkeypatch.setattr('mmengine.dataset.sampler.get_dist_info', lambda r=rank: (r, 2))
        rank_ds = build(root, type='DeepglobeDataset', shot=2, num_episodes=8, pipeline=SMALL)
        for i in DefaultSampler(rank_ds, shuffle=True, seed=3):
            seen[i] = rank_ds.get_data_info(i)['query']['img_path']
    assert sorted(seen) == list(range(8)) and all(seen[i] == single[i][1] for i in seen)


def test_pipeline_from_config_and_item_contract(root):
    ds = build(root, type='ChestXrayDataset', shot=3, num_episodes=2, pipeline=SMALL)
    item = ds[1]
    sample = item['data_samples']
    assert item['inputs'].shape == (3, 20, 24) and item['inputs'].dtype == torch.uint8
    assert sample.support_imgs.shape == (3, 3, 20, 24) and sample.support_imgs.dtype == torch.uint8
    assert sample.support_masks.shape == (3, 20, 24) and sample.support_masks.dtype == torch.uint8
    assert sample.gt_sem_seg.data.shape == (1, 20, 24) and sample.gt_sem_seg.data.dtype == torch.int64
    assert set(sample.gt_sem_seg.data.unique().tolist()) <= {0, 1}
    assert sample.class_id == 0 and sample.episode == 1 and sample.ori_shape == (30, 26)
    assert sample.img_shape == (20, 24) and len(sample.support_paths) == 3
    assert sample.seg_map_path.endswith('_mask.png')
    # grey X-ray PNGs are converted to three equal RGB channels
    assert torch.equal(item['inputs'][0], item['inputs'][1])


# ------------------------------------------------------------------ PASCAL in mmseg's layout (issue 13)
def test_pascal_reads_mmseg_vocdevkit_layout(tmp_path):
    """mmseg's voc_aug.py writes data_root/VOCdevkit/VOC2012/{JPEGImages,SegmentationClassAug}."""
    for sub in ('JPEGImages', 'SegmentationClassAug'):
        os.makedirs(tmp_path / 'VOCdevkit' / 'VOC2012' / sub)
    ds = build(str(tmp_path), type='Pascal5iDataset', fold=4, split='trn')
    first = ds.get_data_info(0)
    assert first['query']['img_path'] == str(tmp_path / 'VOCdevkit' / 'VOC2012' / 'JPEGImages' / '2007_000032.jpg')
    assert first['query']['seg_map_path'].endswith(os.path.join('VOCdevkit', 'VOC2012', 'SegmentationClassAug',
                                                                '2007_000032.png'))


def test_pascal_hsnet_layout_first_and_an_error_naming_both(tmp_path, root):
    from ifa_mmseg.datasets.layout import LayoutError
    for sub in ('JPEGImages', 'SegmentationClassAug'):
        os.makedirs(tmp_path / 'both' / 'VOCdevkit' / 'VOC2012' / sub)
        os.makedirs(tmp_path / 'both' / 'VOC2012' / sub)
    ds = build(str(tmp_path / 'both'), type='Pascal5iDataset', fold=0, split='val')
    assert ds.get_data_info(0)['query']['img_path'].startswith(str(tmp_path / 'both' / 'VOC2012'))
    os.makedirs(tmp_path / 'half' / 'VOCdevkit' / 'VOC2012' / 'JPEGImages')
    with pytest.raises(LayoutError) as err:
        build(str(tmp_path / 'half'), type='Pascal5iDataset')
    text = str(err.value)
    assert os.path.join(str(tmp_path / 'half'), 'VOC2012', '{JPEGImages,SegmentationClassAug}') in text
    assert os.path.join(str(tmp_path / 'half'), 'VOCdevkit', 'VOC2012', '{JPEGImages,SegmentationClassAug}') in text
    assert 'voc_aug.py' in text and 'found only ' + str(tmp_path / 'half' / 'VOCdevkit' / 'VOC2012' / 'JPEGImages') in text


def test_fss1000_results_are_named_by_the_split_list(root):
    """The per-class keys (log, CSV) of FSS-1000 are its class names, not numbers."""
    from ifa_mmseg.evaluation import FewShotIoUMetric
    ds = build(root, type='FSS1000Dataset', split='test', ann_file='three.txt')
    metric = FewShotIoUMetric(protocols=('standard', ))
    metric.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        metric.results.append((info['episode'], info['class_id'], np.array([1, 0, 0, 1]), False))
    keys = [k for k in metric.compute_metrics(metric.results) if k.startswith('IoU.')]
    assert keys == [f'IoU.{name}' for name in fake_layouts.fss_classes('test')[:3]]
    assert not any(k[len('IoU.'):].isdigit() for k in keys)
