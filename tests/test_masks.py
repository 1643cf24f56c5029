"""One decoding rule for binary masks: 0/1, 16-bit and palette masks are read, never silently empty."""
import functools
import os
import re

import numpy as np
import pytest
from mmseg.registry import DATASETS, TRANSFORMS
from PIL import Image

from ifa_mmseg.datasets.transforms import loading
from ifa_mmseg.datasets.transforms.loading import EmptyMaskError, binary_mask
from tests.helpers import fake_layouts

SMALL = [dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask'), dict(type='FewShotResize', scale=(24, 20))]
FG = np.array([[0, 1, 1], [0, 0, 1]], bool)  # the foreground every stored form below encodes


def load_mask(path) -> np.ndarray:
    """``gt_seg_map`` of the threshold ``LoadBinaryMask`` (uint8 [H, W])."""
    transform = TRANSFORMS.build(dict(type='LoadBinaryMask'))
    return transform(dict(seg_map_path=str(path), seg_fields=[]))['gt_seg_map']


def save(img: Image.Image, path) -> str:
    img.save(path)
    with Image.open(path) as stored:  # the mode the file is read back in, not the one written
        return stored.mode


def palette_mask(indices: np.ndarray, colours) -> Image.Image:
    img = Image.frombytes('P', indices.shape[::-1], indices.astype(np.uint8).tobytes())
    img.putpalette([v for colour in colours for v in colour])
    return img


@pytest.mark.parametrize('name,img,mode', [
    ('8-bit 0/1', Image.fromarray(FG.astype(np.uint8)), 'L'),
    ('16-bit 0/1', Image.fromarray(FG.astype(np.uint16)), 'I;16'),
    ('16-bit 0/65535', Image.fromarray(FG.astype(np.uint16) * 65535), 'I;16'),
    ('palette, index 1 = (128, 0, 0)', palette_mask(FG, [(0, 0, 0), (128, 0, 0)]), 'P'),
    ('palette, index 0 white', palette_mask(FG, [(255, 255, 255), (0, 0, 0)]), 'P'),
    ('RGB 0/1', Image.fromarray(FG.astype(np.uint8)).convert('RGB'), 'RGB'),
    ('grey with alpha 0/1', Image.fromarray(FG.astype(np.uint8)).convert('LA'), 'LA'),
    ('0/255', Image.fromarray(FG.astype(np.uint8) * 255), 'L'),
])
def test_every_storage_gives_the_foreground(name, img, mode, tmp_path):
    path = tmp_path / 'mask.png'
    assert save(img, path) == mode
    assert load_mask(path).tolist() == FG.astype(np.uint8).tolist(), name


def test_grey_and_colour_masks_keep_the_official_rule(tmp_path):
    """Anything not 0/1 is PIL ``convert('L') >= 128``, bit for bit, as the official loaders."""
    rng = np.random.default_rng(0)
    levels = rng.choice(np.array([0, 1, 2, 40, 127, 128, 129, 200, 255], np.uint8), (13, 11))
    colour = rng.integers(0, 256, (13, 11, 3), dtype=np.uint8)
    for k, img in enumerate([Image.fromarray(levels), Image.fromarray(colour), Image.fromarray(colour).convert('RGBA'),
                             Image.fromarray(np.array([[0, 255], [1, 255]], np.uint8))]):
        path = tmp_path / f'm{k}.png'
        img.save(path)
        with Image.open(path) as stored:
            official = np.asarray(stored.convert('L')) >= 128
        assert np.array_equal(load_mask(path), official.astype(np.uint8))


def test_16_bit_masks_are_scaled_to_8_bits(tmp_path):
    # 32896 * 255 / 65535 = 128 exactly: foreground from there, as grey 128
    levels = np.array([[0, 32895, 32896], [65535, 257 * 127, 257 * 128]], np.uint16)
    path = tmp_path / 'm.png'
    assert save(Image.fromarray(levels), path) == 'I;16'
    assert load_mask(path).tolist() == [[0, 0, 1], [1, 0, 1]]
    wide = Image.fromarray(np.array([[0, 2**31 - 1], [2**30, 2**20]], np.int32))  # 32-bit 'I'
    assert binary_mask(wide, 128, 'x').tolist() == [[False, True], [False, False]]
    old_pillow_16_bit = Image.fromarray(np.array([[0, 65535], [257 * 127, 257 * 128]], np.int32))
    assert binary_mask(old_pillow_16_bit, 128, 'x').tolist() == [[False, True], [False, True]]


@pytest.mark.parametrize('img', [Image.new('L', (4, 3)), Image.new('I;16', (4, 3)), Image.new('RGB', (4, 3)),
                                 palette_mask(np.zeros((3, 4)), [(200, 200, 200)])])
def test_all_zero_mask_stays_empty(img, tmp_path):
    path = tmp_path / 'zero.png'
    img.save(path)
    mask = load_mask(path)
    assert mask.shape == (3, 4) and not mask.any()


def test_dark_colour_mask_raises_naming_file_mode_and_values(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[1:3, 1:4] = (128, 0, 0)  # grey 38: no pixel reaches 128
    path = tmp_path / 'dark.png'
    Image.fromarray(rgb).save(path)
    with pytest.raises(EmptyMaskError) as err:
        load_mask(path)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)  # as every other bad-input error of the datasets
    assert msg.startswith(f'{path}: ') and 'PIL mode RGB' in msg
    assert 'values (0, 0, 0), (128, 0, 0)' in msg and 'grey levels 0, 38' in msg
    assert 'store the foreground as 255' in msg.lower() and "lower LoadBinaryMask's threshold" in msg
    grey = tmp_path / 'grey.png'
    Image.fromarray(np.array([[0, 50, 60, 70, 80, 90]], np.uint8)).save(grey)
    with pytest.raises(EmptyMaskError, match=re.escape(f'{grey}: the mask (PIL mode L, values 0, 50, 60, 70, ...)')):
        load_mask(grey)


def test_arrays_follow_the_same_rule():
    assert binary_mask(FG, 128, 'a').tolist() == FG.tolist()
    for dtype in (np.uint8, np.int64, np.uint16):
        assert binary_mask(FG.astype(dtype), 128, 'a').tolist() == FG.tolist()
        assert binary_mask(FG.astype(dtype) * 200, 128, 'a').tolist() == FG.tolist()
    colour = np.where(FG[..., None], np.uint8(255), np.uint8(0)).repeat(3, 2)
    assert binary_mask(colour, 128, 'a').tolist() == FG.tolist()
    with pytest.raises(EmptyMaskError, match=re.escape('mask #3: the mask (int64 array, values 0, 50)')):
        binary_mask(FG.astype(np.int64) * 50, 128, 'mask #3')
    with pytest.raises(ValueError, match=re.escape('mask #2: a mask array must be bool or integer [H, W]')):
        binary_mask(FG.astype(np.float32), 128, 'mask #2')


# ---------------------------------------------------------------------------------- datasets
def rewrite_masks(root: str, encode) -> int:
    """Store every mask under ``root`` again (``encode(foreground bool [H, W]) -> PIL image``); returns the count."""
    count = 0
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith('.png') and os.path.basename(folder) in ('groundtruth', 'masks'):
                path = os.path.join(folder, name)
                with Image.open(path) as img:
                    fg = np.asarray(img.convert('L')) >= 128
                encode(fg).save(path)
                count += 1
    return count


def episode_masks(root: str, **cfg):
    ds = DATASETS.build(dict(cfg, data_root=root, num_episodes=12, pipeline=SMALL))
    samples = [ds[i]['data_samples'] for i in range(len(ds))]
    return [(s.gt_sem_seg.data.numpy(), s.support_masks.numpy()) for s in samples]


@pytest.mark.parametrize('dataset,write', [
    ('DeepglobeDataset', fake_layouts.write_deepglobe),
    ('ChestXrayDataset', functools.partial(fake_layouts.write_chestxray, size=(30, 26))),
])
def test_datasets_read_0_1_16_bit_and_palette_masks_like_0_255(dataset, write, tmp_path):
    write(str(tmp_path / 'as_written'))  # anti-aliased grey levels around 128
    reference = episode_masks(str(tmp_path / 'as_written'), type=dataset)
    assert all(q.any() for q, _ in reference)
    encodings = dict(
        grey_0_255=lambda fg: Image.fromarray(fg.astype(np.uint8) * 255),
        grey_0_1=lambda fg: Image.fromarray(fg.astype(np.uint8)),
        i16_0_1=lambda fg: Image.fromarray(fg.astype(np.uint16)),
        palette=lambda fg: palette_mask(fg, [(0, 0, 0), (128, 0, 0)]),
    )
    for name, encode in encodings.items():
        root = str(tmp_path / name)
        write(root)
        assert rewrite_masks(root, encode) >= 8
        for (q, s), (q_ref, s_ref) in zip(episode_masks(root, type=dataset), reference):
            assert np.array_equal(q, q_ref) and np.array_equal(s, s_ref), name


def test_class_with_only_empty_masks_names_its_folder(tmp_path):
    fake_layouts.write_deepglobe(str(tmp_path))
    truth = tmp_path / 'Deepglobe' / '04_train_cat' / '3' / 'test' / 'groundtruth'
    first, *rest = sorted(truth.iterdir())
    for path in rest:
        with Image.open(path) as img:
            Image.new('L', img.size).save(path)
    DATASETS.build(dict(type='DeepglobeDataset', data_root=str(tmp_path)))  # one mask with foreground is enough
    with Image.open(first) as img:
        Image.new('L', img.size).save(first)
    with pytest.raises(ValueError) as err:
        DATASETS.build(dict(type='DeepglobeDataset', data_root=str(tmp_path)))
    msg = str(err.value)
    assert f'class 2 (rangeland): the first 6 mask(s) in {truth} have no foreground pixel' in msg
    assert 'value 1 for masks holding only 0 and 1' in msg and 'threshold 128' in msg

    lung = tmp_path / 'LungSegmentation' / 'masks'
    fake_layouts.write_chestxray(str(tmp_path), size=(20, 20))
    for path in lung.iterdir():
        Image.new('L', (20, 20)).save(path)
    with pytest.raises(ValueError, match=re.escape(f'class 0 (lung): the first 8 mask(s) in {lung} have no')):
        DATASETS.build(dict(type='ChestXrayDataset', data_root=str(tmp_path)))


def test_mask_check_reads_one_mask_per_class(tmp_path, monkeypatch):
    fake_layouts.write_deepglobe(str(tmp_path))
    opened = []
    open_image = loading.open_image
    monkeypatch.setattr(loading, 'open_image', lambda path, *args: opened.append(path) or open_image(path, *args))
    DATASETS.build(dict(type='DeepglobeDataset', data_root=str(tmp_path)))
    assert len(opened) == 6 and all('groundtruth' in p for p in opened)
    opened.clear()
    DATASETS.build(dict(type='DeepglobeDataset', data_root=str(tmp_path),
                        pipeline=[dict(type='LoadRGBImageFromFile'), dict(type='FewShotResize', scale=(8, 8))]))
    assert opened == []  # no LoadBinaryMask: nothing to check
