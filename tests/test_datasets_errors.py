"""Bad input gives errors naming the files and the fix (issue 3, item 7)."""
import os
import re

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmseg.registry import DATASETS, MODELS
from PIL import Image

from ifa_mmseg.datasets import LayoutError
from ifa_mmseg.datasets.transforms import UnreadableFileError
from tests.helpers import fake_layouts
from tests.helpers.models import r50_cfg

SMALL = [dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask'), dict(type='FewShotResize', scale=(32, 32))]


def build(root, **cfg):
    return DATASETS.build(dict(cfg, data_root=str(root)))


def test_missing_data_root_names_path_and_converter(tmp_path):
    root = tmp_path / 'nowhere'
    with pytest.raises(LayoutError) as err:
        build(root, type='DeepglobeDataset')
    assert os.path.join(str(root), 'Deepglobe', '04_train_cat', '1', 'test', 'origin') in str(err.value)
    assert 'tools/dataset_converters/deepglobe.py' in str(err.value)
    with pytest.raises(LayoutError, match='tools/dataset_converters/isic.py'):
        build(root, type='ISICDataset')
    with pytest.raises(LayoutError, match='tools/dataset_converters/chestxray.py'):
        build(root, type='ChestXrayDataset')
    with pytest.raises(LayoutError, match='SegmentationClassAug'):
        build(root, type='Pascal5iDataset')


def test_missing_class_folder(tmp_path):
    fake_layouts.write_deepglobe(str(tmp_path))
    fake_layouts.write_isic(str(tmp_path))
    missing = tmp_path / 'Deepglobe' / '04_train_cat' / '4' / 'test' / 'origin'
    for f in missing.iterdir():
        f.unlink()
    missing.rmdir()
    with pytest.raises(LayoutError, match=f'{missing}(.|\n)*deepglobe.py'):
        build(tmp_path, type='DeepglobeDataset')
    isic_class = tmp_path / 'ISIC' / 'ISIC2018_Task1-2_Training_Input' / '2'
    for f in isic_class.iterdir():
        f.unlink()
    isic_class.rmdir()
    with pytest.raises(LayoutError, match=f'{isic_class}(.|\n)*isic.py'):
        build(tmp_path, type='ISICDataset')
    fake_layouts.write_fss1000(str(tmp_path), fake_layouts.fss_classes('test')[:2])
    with pytest.raises(LayoutError, match=os.path.join(str(tmp_path), 'FSS-1000', fake_layouts.fss_classes('test')[2])):
        build(tmp_path, type='FSS1000Dataset', split='test')


def test_missing_masks_and_images(tmp_path):
    fake_layouts.write_deepglobe(str(tmp_path))
    mask = tmp_path / 'Deepglobe' / '04_train_cat' / '2' / 'test' / 'groundtruth' / '101_mask_13.png'
    mask.unlink()
    with pytest.raises(LayoutError, match=str(mask)):
        build(tmp_path, type='DeepglobeDataset')
    stems = fake_layouts.write_chestxray(str(tmp_path), size=(20, 20))
    image = tmp_path / 'LungSegmentation' / 'CXR_png' / f'{stems[2]}.png'
    image.unlink()
    with pytest.raises(LayoutError, match=str(image)):
        build(tmp_path, type='ChestXrayDataset')


def test_montgomery_mask_without_suffix(tmp_path):
    stems = fake_layouts.write_chestxray(str(tmp_path), size=(20, 20))
    masks = tmp_path / 'LungSegmentation' / 'masks'
    (masks / f'{stems[0]}_mask.png').rename(masks / f'{stems[0]}.png')
    with pytest.raises(LayoutError) as err:
        build(tmp_path, type='ChestXrayDataset')
    msg = str(err.value)
    assert str(masks / f'{stems[0]}.png') in msg and '_mask.png' in msg
    assert 'python tools/dataset_converters/chestxray.py DATA_ROOT --fix' in msg


def test_unreadable_files_are_named(tmp_path):
    fake_layouts.write_isic(str(tmp_path), counts=(3, 3, 3))
    ds = build(tmp_path, type='ISICDataset', num_episodes=3, pipeline=SMALL)
    episode = ds.get_data_info(1)
    with open(episode['query']['img_path'], 'wb') as f:
        f.write(b'not a jpeg')
    with pytest.raises(UnreadableFileError, match=episode['query']['img_path']):
        ds[1]
    os.remove(episode['query']['img_path'])
    with pytest.raises(UnreadableFileError, match=episode['query']['img_path']):  # missing file
        ds[1]
    fake_layouts.write_isic(str(tmp_path), counts=(3, 3, 3))
    with open(episode['supports'][0]['seg_map_path'], 'wb') as f:
        f.write(b'\x89PNG broken')
    with pytest.raises(UnreadableFileError, match=episode['supports'][0]['seg_map_path']):
        ds[1]


def test_mask_size_mismatch_names_both_files(tmp_path):
    fake_layouts.write_isic(str(tmp_path), counts=(3, 3, 3), size=(20, 30))
    ds = build(tmp_path, type='ISICDataset', num_episodes=1, pipeline=SMALL)
    query = ds.get_data_info(0)['query']
    Image.new('L', (31, 20)).save(query['seg_map_path'])
    with pytest.raises(ValueError) as err:
        ds[0]
    assert query['seg_map_path'] in str(err.value) and query['img_path'] in str(err.value)


def test_too_few_images_for_the_shot(tmp_path):
    fake_layouts.write_isic(str(tmp_path), counts=(7, 5, 7))
    folder = os.path.join(str(tmp_path), 'ISIC', 'ISIC2018_Task1-2_Training_Input', '2')
    with pytest.raises(ValueError, match=f'seborrheic_keratosis\\) has 5 image\\(s\\) in {folder}(.|\n)*at least 6'):
        build(tmp_path, type='ISICDataset', shot=5)
    assert len(build(tmp_path, type='ISICDataset', shot=5, episode_sampling='official')) == 600


def test_empty_support_mask_is_allowed(tmp_path, root):
    fake_layouts.write_isic(str(tmp_path), counts=(3, 3, 3))
    ds = build(tmp_path, type='ISICDataset', num_episodes=2, pipeline=SMALL)
    support = ds.get_data_info(0)['supports'][0]
    with Image.open(support['img_path']) as img:
        Image.fromarray(fake_layouts.fake_mask('x', img.size[::-1], empty=True)).save(support['seg_map_path'])
    batch = pseudo_collate([ds[0], ds[1]])
    assert batch['data_samples'][0].support_masks.sum() == 0
    model = MODELS.build(r50_cfg(root)).eval()
    with torch.no_grad():
        out = model.test_step(batch)
    assert out[0].pred_sem_seg.data.shape == (1, 32, 32)


def empty_folder(folder) -> str:
    """Remove every file of ``folder`` and keep the folder."""
    for f in folder.iterdir():
        f.unlink()
    return str(folder)


def test_empty_class_folder_is_named(tmp_path):
    fake_layouts.write_deepglobe(str(tmp_path))
    origin = empty_folder(tmp_path / 'Deepglobe' / '04_train_cat' / '4' / 'test' / 'origin')
    with pytest.raises(ValueError, match=re.escape(f'class 3 (forest) has 0 image(s) in {origin}; 1-shot')):
        build(tmp_path, type='DeepglobeDataset')
    fake_layouts.write_isic(str(tmp_path))
    isic_class = empty_folder(tmp_path / 'ISIC' / 'ISIC2018_Task1-2_Training_Input' / '2')
    with pytest.raises(ValueError, match=re.escape(f'class 1 (seborrheic_keratosis) has 0 image(s) in {isic_class}')):
        build(tmp_path, type='ISICDataset', episode_sampling='official')
    classes = fake_layouts.fss_classes('test')
    fake_layouts.write_fss1000(str(tmp_path), classes)
    fss_class = empty_folder(tmp_path / 'FSS-1000' / classes[5])
    with pytest.raises(LayoutError, match=r'1 FSS-1000 class folder\(s\) of .*test\.txt hold no \.jpg image, e\.g\. '
                       + re.escape(fss_class)):
        build(tmp_path, type='FSS1000Dataset', split='test')


@pytest.mark.parametrize('num_episodes', [0, -3])
def test_non_positive_num_episodes(tmp_path, num_episodes):
    fake_layouts.write_isic(str(tmp_path), counts=(3, 3, 3))
    with pytest.raises(ValueError, match=f'num_episodes must be a whole number > 0 .*got {num_episodes}$'):
        build(tmp_path, type='ISICDataset', num_episodes=num_episodes)
    with pytest.raises(ValueError, match=f'num_episodes must be a whole number > 0 .*got {num_episodes}$'):
        DATASETS.build(dict(type='IFAAdaptationDataset', dataset=dict(type='ISICDataset', data_root=str(tmp_path)),
                            num_episodes=num_episodes))
