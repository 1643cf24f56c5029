"""The synthetic cross-domain benchmark: deterministic, in the real layouts, with a visible domain shift (item 6)."""
import os

import numpy as np
import pytest
from mmseg.registry import DATASETS
from PIL import Image

from ifa_mmseg.datasets.synthetic import SHAPES, main, make_synthetic_benchmark
from tests.helpers.fake_layouts import tree_digest

SMALL = dict(size=32, images_per_class=6, num_tiles=18, lesions_per_class=6, num_xrays=8)


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic'))
    return root, make_synthetic_benchmark(root, seed=0)


def test_deterministic_from_seed(tmp_path):
    digests = [tree_digest(make_synthetic_benchmark(str(tmp_path / name), seed=seed, **SMALL)['source']['data_root'])
               for name, seed in (('a', 0), ('b', 0), ('c', 1))]
    assert digests[0] == digests[1] != digests[2]


def test_real_dataset_classes_read_every_domain(bench):
    root, configs = bench
    source = DATASETS.build(dict(configs['source'], shot=5))
    assert len(source.metainfo['classes']) == len(SHAPES) >= 10 and len(source) == 10 * len(SHAPES)
    counts = {name: [len(p) for p in DATASETS.build(dict(configs[name], shot=5)).class_pools]
              for name in ('deepglobe', 'isic', 'chestxray')}
    assert len(counts['deepglobe']) == 6 and min(counts['deepglobe']) >= 24 // 3
    assert counts['isic'] == [8, 8, 8] and counts['chestxray'] == [20]
    for name in ('source', 'deepglobe', 'isic', 'chestxray'):
        item = DATASETS.build(dict(configs[name], shot=2, num_episodes=1))[0]
        masks = item['data_samples'].support_masks
        assert item['inputs'].shape == (3, 400, 400) and 0 < masks.float().mean() < 1


def mean_stats(paths):
    imgs = np.stack([np.asarray(Image.open(p).convert('RGB'), dtype=np.float32) for p in paths])
    chroma = np.abs(imgs - imgs.mean(-1, keepdims=True)).mean()
    noise = np.abs(np.diff(imgs.mean(-1), axis=-1)).mean()
    return chroma, noise


def test_clear_appearance_shift(bench):
    root, _ = bench
    source = [os.path.join(root, 'FSS-1000', s, f'{n}.jpg') for s in SHAPES for n in (1, 2)]
    xray_dir = os.path.join(root, 'LungSegmentation', 'CXR_png')
    xrays = [os.path.join(xray_dir, n) for n in sorted(os.listdir(xray_dir))]
    src_chroma, src_noise = mean_stats(source)
    xray_chroma, xray_noise = mean_stats(xrays)
    with Image.open(xrays[0]) as first:
        assert first.mode == 'L'
    assert xray_chroma == 0 and src_chroma > 20
    assert xray_noise > 2 * src_noise  # grey-scale and noisy
    tiles = os.path.join(root, 'Deepglobe', '04_train_cat', '1', 'test', 'origin')
    _, tile_texture = mean_stats([os.path.join(tiles, n) for n in sorted(os.listdir(tiles))])
    assert tile_texture > 1.5 * src_noise  # textured land cover against smooth scenes
    skin = os.path.join(root, 'ISIC', 'ISIC2018_Task1-2_Training_Input', '1')
    means = [np.asarray(Image.open(os.path.join(skin, n)), np.float32).mean((0, 1)) for n in os.listdir(skin)]
    assert all(r > g > b for r, g, b in means)  # skin tones everywhere
    src_means = [np.asarray(Image.open(p), np.float32).mean((0, 1)) for p in source]
    assert not all(r > g > b for r, g, b in src_means)


def test_command_line(tmp_path, capsys):
    assert main([str(tmp_path / 'out'), '--seed', '2', '--size', '32']) == 0
    assert os.path.isfile(tmp_path / 'out' / 'synthetic_splits' / 'source.txt')
    assert 'DeepglobeDataset' in capsys.readouterr().out
