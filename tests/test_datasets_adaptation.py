"""IFA adaptation episodes: pseudo-queries from supports, standard and official support pools (issue 3, item 4)."""
import json
import os

import numpy as np
import pytest
from mmseg.registry import DATASETS

from tests.helpers import fake_layouts

SIZE = (24, 24)
# the fake images are SIZE already, so this resize keeps every pixel
SAME_SIZE = [dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask'), dict(type='FewShotResize', scale=SIZE)]


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('adapt'))
    fake_layouts.write_isic(root, counts=(12, 12, 12), size=SIZE)
    fake_layouts.write_deepglobe(root, size=SIZE)
    fake_layouts.write_chestxray(root, size=SIZE)
    classes = fake_layouts.fss_classes('val')[:53]
    fake_layouts.write_fss1000(root, classes, size=SIZE)
    with open(os.path.join(root, 'val53.txt'), 'w') as f:
        f.write(''.join(c + '\n' for c in classes))
    trn = fake_layouts.fss_classes('trn')[:4]
    fake_layouts.write_fss1000(root, trn, size=SIZE)
    with open(os.path.join(root, 'trn4.txt'), 'w') as f:
        f.write(''.join(c + '\n' for c in trn))
    return root


def adaptation(root, dataset, **kwargs):
    return DATASETS.build(dict(type='IFAAdaptationDataset', dataset=dict(dataset, data_root=root), **kwargs))


def test_standard_pool_avoids_every_eval_query_and_is_written(root, tmp_path):
    eval_cfg = dict(type='ISICDataset', shot=2, num_episodes=15, pipeline=SAME_SIZE)
    pool_file = str(tmp_path / 'work_dir' / 'support_pool.json')
    ds = adaptation(root, eval_cfg, seed=5, eval_seeds=(0, 1, 2), pool_file=pool_file)
    assert len(ds) == 3  # one pseudo-episode per class and epoch
    queries = {e['query']['img_path'] for s in (0, 1, 2) for e in ds.eval_dataset.generate_episodes(s)}
    episodes = [ds.get_data_info(i) for i in range(3)]
    assert [e['class_id'] for e in episodes] == [0, 1, 2]
    chosen = [s['img_path'] for e in episodes for s in e['supports']]
    assert len(set(chosen)) == 6 and not set(chosen) & queries
    with open(pool_file) as f:
        record = json.load(f)
    assert record['seed'] == 5 and record['eval_seeds'] == [0, 1, 2] and record['shot'] == 2
    assert [os.path.join(root, p) for c in ('nevus', 'seborrheic_keratosis', 'melanoma')
            for p in record['supports'][c]] == chosen
    again = adaptation(root, eval_cfg, seed=5, eval_seeds=(0, 1, 2))
    other = adaptation(root, eval_cfg, seed=6, eval_seeds=(0, 1, 2))
    assert [again.get_data_info(i)['supports'] for i in range(3)] == [e['supports'] for e in episodes]
    assert [other.get_data_info(i)['supports'] for i in range(3)] != [e['supports'] for e in episodes]


def test_pseudo_query_is_a_copy_of_a_support(root):
    isic = dict(type='ISICDataset', num_episodes=6, pipeline=SAME_SIZE)
    plain = adaptation(root, dict(isic, shot=3), query_pipeline=SAME_SIZE)
    picked = set()
    for epoch in range(8):  # the pseudo-query's support is drawn from (seed, epoch, index)
        plain.set_epoch(epoch)
        item = plain[1]
        sample = item['data_samples']
        j = sample.pseudo_query_index
        picked.add(j)
        assert (item['inputs'] == sample.support_imgs[j]).all()
        assert (sample.gt_sem_seg.data[0] == sample.support_masks[j]).all()
        assert sample.img_path == sample.support_paths[j] and sample.class_id == 1
    assert picked == {0, 1, 2}
    flips = SAME_SIZE[:2] + [dict(type='RandomFlip', prob=1.0, direction='horizontal'), SAME_SIZE[2]]
    flipped = adaptation(root, dict(isic, shot=1), query_pipeline=flips)[0]
    sample = flipped['data_samples']
    assert (flipped['inputs'] == sample.support_imgs[0].flip(-1)).all()
    assert (sample.gt_sem_seg.data[0] == sample.support_masks[0].flip(-1)).all()


def test_default_augmentations_per_target(root):
    np.random.seed(0)
    dg = adaptation(root, dict(type='DeepglobeDataset', num_episodes=6, pipeline=SAME_SIZE))
    names = [type(t).__name__ for t in dg.query_pipeline.transforms]
    assert 'RandomGridShuffle' in names and dg.query_pipeline.transforms[2].prob == 0.8
    isic = adaptation(root, dict(type='ISICDataset', num_episodes=6, pipeline=SAME_SIZE))
    assert 'RandomGridShuffle' not in [type(t).__name__ for t in isic.query_pipeline.transforms]
    assert isic.query_pipeline.transforms[2].prob == 0.5
    item = dg[0]  # the query pipeline is the support pipeline plus the augmentations
    assert item['inputs'].shape == (3, 24, 24) and item['data_samples'].support_imgs.shape == (1, 3, 24, 24)


def test_official_pool_resamples_from_the_test_pool(root):
    lengths = {name: len(adaptation(root, dict(cfg, pipeline=SAME_SIZE), support_pool='official'))
               for name, cfg in dict(deepglobe=dict(type='DeepglobeDataset'), isic=dict(type='ISICDataset'),
                                     lung=dict(type='ChestXrayDataset'),
                                     fss=dict(type='FSS1000Dataset', split='val', ann_file='val53.txt')).items()}
    assert lengths == dict(deepglobe=6, isic=3, lung=1, fss=520)
    ds = adaptation(root, dict(type='ISICDataset', shot=2, pipeline=SAME_SIZE), support_pool='official')

    def epoch(e):
        ds.set_epoch(e)
        return [tuple(ds[i]['data_samples'].support_paths) for i in range(len(ds))]

    first, second = epoch(0), epoch(1)
    assert first != second  # new supports every epoch
    np.random.seed(3)  # numpy's global state plays no part, and is left as it was
    state = np.random.get_state()[1].copy()
    assert epoch(0) == first and (np.random.get_state()[1] == state).all()
    pool = {p['img_path'] for p in ds.eval_dataset.class_pools[1]}
    assert set(first[1]) <= pool


def test_fss_standard_pool_needs_another_split(root):
    eval_cfg = dict(type='FSS1000Dataset', split='val', ann_file='val53.txt', pipeline=SAME_SIZE)
    with pytest.raises(ValueError, match='never a query'):
        adaptation(root, eval_cfg)
    ds = adaptation(root, eval_cfg, eval_seeds=(0, ),
                    pool_dataset=dict(type='FSS1000Dataset', data_root=root, split='trn', ann_file='trn4.txt'))
    assert len(ds) == 4 and ds.metainfo['classes'] == tuple(fake_layouts.fss_classes('trn')[:4])
    assert ds[3]['data_samples'].img_path.split(os.sep)[-2] == fake_layouts.fss_classes('trn')[3]
