"""Episodes and tensors against the official loaders (issue 3, items 2 and 3).

The fixtures in tests/fixtures/official_data were made by running the official IFA
loaders on the fake layouts of tests/helpers/fake_layouts.py (see the README there).
"""
import hashlib
import io
import json
import os

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmseg.registry import DATASETS, MODELS
from PIL import Image

from tests.helpers import fake_layouts

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'official_data')
with open(os.path.join(FIXTURES, 'episodes.json')) as _f:
    EXPECTED = json.load(_f)

CONFIGS = dict(pascal=dict(type='Pascal5iDataset', fold=4, split='trn'),
               deepglobe=dict(type='DeepglobeDataset'),
               isic=dict(type='ISICDataset'),
               chestxray=dict(type='ChestXrayDataset'),
               fss1000=dict(type='FSS1000Dataset', split='val'))
OFFICIAL_CLASS_OFFSET = dict(fss1000=520)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('official') / 'dataset')
    fake_layouts.write_deepglobe(root)
    fake_layouts.write_isic(root)
    fake_layouts.write_chestxray(root)
    fake_layouts.write_fss1000(root, fake_layouts.fss_classes('val'))
    fake_layouts.write_pascal(root, EXPECTED['pascal_files'])
    digest = fake_layouts.tree_digest(root)
    assert digest == EXPECTED['layout_digest'], (
        f'the fake layout changed (digest {digest}, fixtures made on {EXPECTED["layout_digest"]}); '
        'regenerate the fixtures (tests/fixtures/official_data/README.md)')
    return root


def build(name, root, **kwargs):
    return DATASETS.build(dict(CONFIGS[name], data_root=root, episode_sampling='official', **kwargs))


def official_name(name, image, root):
    """Our episode image in the official loader's naming."""
    if name == 'pascal':
        return os.path.splitext(os.path.basename(image['img_path']))[0]
    return os.path.relpath(image['seg_map_path'] if name == 'chestxray' else image['img_path'], root)


@pytest.mark.parametrize('case', sorted(EXPECTED['episodes']))
def test_official_episode_sequence(case, data_root):
    name, shot, seed = case.split('/')
    ds = build(name, data_root, shot=int(shot[1:]), seed=int(seed[1:]))
    offset = OFFICIAL_CLASS_OFFSET.get(name, 0)
    lines = []
    for i in range(len(ds)):
        e = ds.get_data_info(i)
        supports = ','.join(official_name(name, s, data_root) for s in e['supports'])
        lines.append(f'{e["class_id"] + offset}|{official_name(name, e["query"], data_root)}|{supports}')
    expected = EXPECTED['episodes'][case]
    assert lines[:len(expected['head'])] == expected['head']
    assert len(lines) == expected['count']
    assert hashlib.sha256('\n'.join(lines).encode()).hexdigest() == expected['sha256']


def decode_png(buf):
    return np.array(Image.open(io.BytesIO(buf.tobytes())))


def official_image(rec, key):
    levels = decode_png(rec[f'{key}_img_png'])
    palette = rec[f'{key}_img_palette']
    return torch.from_numpy(np.stack([palette[c][levels[..., c]] for c in range(3)]))


PIXEL_FILES = sorted(f for f in os.listdir(FIXTURES) if f.startswith('pixels_'))


@pytest.mark.parametrize('fname', PIXEL_FILES)
def test_model_side_tensors_match_official(fname, data_root):
    """After pseudo_collate and FewShotSegDataPreProcessor, within 1e-6 of the official tensors."""
    rec = np.load(os.path.join(FIXTURES, fname))
    name = fname[len('pixels_'):].rsplit('_k', 1)[0]
    shot = int(rec['shot'])
    ds = build(name, data_root, shot=shot, seed=0)
    preprocessor = MODELS.build(dict(type='FewShotSegDataPreProcessor'))
    data = preprocessor(pseudo_collate([ds[0]]))
    sample = data['data_samples'][0]

    info = ds.get_data_info(0)
    assert official_name(name, info['query'], data_root) == str(rec['query_name'])
    assert [official_name(name, s, data_root) for s in info['supports']] == rec['support_names'].tolist()
    assert sample.class_id + OFFICIAL_CLASS_OFFSET.get(name, 0) == int(rec['class_id'])

    torch.testing.assert_close(data['inputs'][0], official_image(rec, 'query'), rtol=0, atol=1e-6)
    assert torch.equal(sample.gt_sem_seg.data[0], torch.from_numpy(decode_png(rec['query_mask'])).long())
    for k in range(shot):
        torch.testing.assert_close(sample.support_imgs[k], official_image(rec, f'support{k}'), rtol=0, atol=1e-6)
        assert torch.equal(sample.support_masks[k], torch.from_numpy(decode_png(rec[f'support{k}_mask'])))
