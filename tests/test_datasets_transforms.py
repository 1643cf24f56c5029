"""Per-image transforms: loading, the official resize rules, packing, IFA augmentations (issue 3, items 3, 4)."""
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import Compose
from mmseg.registry import TRANSFORMS
from PIL import Image
from torchvision import transforms as T

from ifa_mmseg.datasets import episode_pipeline, ifa_query_pipeline


def save(array, path, mode=None):
    img = Image.fromarray(array)
    img = img.convert(mode) if mode else img
    img.save(path)
    return str(path)


def load(img_path, mask_path, mode='threshold', **extra):
    pipe = Compose([TRANSFORMS.build(dict(type='LoadRGBImageFromFile')),
                    TRANSFORMS.build(dict(type='LoadBinaryMask', mode=mode))])
    return pipe(dict(img_path=img_path, seg_map_path=mask_path, seg_fields=[], **extra))


def test_threshold_mask_at_128(tmp_path):
    img = save(np.zeros((2, 3, 3), np.uint8), tmp_path / 'a.jpg')
    grey = np.array([[0, 127, 128], [129, 255, 1]], np.uint8)
    out = load(img, save(grey, tmp_path / 'a.png'))
    assert out['gt_seg_map'].tolist() == [[0, 0, 1], [1, 1, 0]] and out['gt_seg_map'].dtype == np.uint8
    assert out['seg_fields'] == ['gt_seg_map'] and out['ori_shape'] == (2, 3)
    rgb = np.repeat(grey[..., None], 3, -1)  # 3-channel masks (Deepglobe) are read as grey
    assert load(img, save(rgb, tmp_path / 'b.png'))['gt_seg_map'].tolist() == [[0, 0, 1], [1, 1, 0]]


def test_label_mask_by_class_palette_and_grey(tmp_path):
    img = save(np.zeros((2, 3, 3), np.uint8), tmp_path / 'a.jpg')
    labels = np.array([[0, 3, 255], [3, 4, 3]], np.uint8)
    palette = Image.frombytes('P', (3, 2), labels.tobytes())
    palette.putpalette([v for i in range(256) for v in (255 - i, i, 0)])
    palette.save(tmp_path / 'p.png')
    for path in (str(tmp_path / 'p.png'), save(labels, tmp_path / 'l.png')):
        out = load(img, path, mode='label', mask_label=3)
        assert out['gt_seg_map'].tolist() == [[0, 1, 0], [1, 0, 1]]  # 255 boundary -> background


def test_rgb_decoding_like_pil(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    path = save(rgb, tmp_path / 'x.jpg')
    out = load(path, save(np.zeros((9, 7), np.uint8), tmp_path / 'x.png'))
    assert np.array_equal(out['img'], np.array(Image.open(path).convert('RGB')))
    grey = save(rgb[..., 0], tmp_path / 'g.png')
    assert load(grey, str(tmp_path / 'x.png'))['img'].shape == (9, 7, 3)


@pytest.mark.parametrize('src', [(37, 53), (410, 420), (7, 5)])
def test_resize_matches_torchvision_pil_and_legacy_nearest(src):
    rng = np.random.default_rng(src[0])
    img = rng.integers(0, 256, (*src, 3), dtype=np.uint8)
    mask = (rng.random(src) > 0.5).astype(np.uint8)
    out = TRANSFORMS.build(dict(type='FewShotResize', scale=(50, 40)))(
        dict(img=img, gt_seg_map=mask, seg_fields=['gt_seg_map'], img_shape=src))
    reference = np.array(T.Resize((40, 50))(Image.fromarray(img)))
    assert np.array_equal(out['img'], reference) and out['img_shape'] == (40, 50)
    nearest = F.interpolate(torch.from_numpy(mask)[None, None].float(), size=(40, 50), mode='nearest')[0, 0]
    assert np.array_equal(out['gt_seg_map'], nearest.numpy().astype(np.uint8))


def test_legacy_nearest_differs_from_pil_nearest():
    mask = np.arange(49, dtype=np.uint8).reshape(7, 7)
    out = TRANSFORMS.build(dict(type='FewShotResize', scale=(5, 5)))(
        dict(img=np.zeros((7, 7, 3), np.uint8), gt_seg_map=mask, seg_fields=['gt_seg_map'], img_shape=(7, 7)))
    pil = np.array(Image.fromarray(mask).resize((5, 5), Image.NEAREST))
    idx = np.floor(np.arange(5) * 7 / 5).astype(int)  # src = floor(dst * in / out)
    assert np.array_equal(out['gt_seg_map'], mask[np.ix_(idx, idx)]) and not np.array_equal(out['gt_seg_map'], pil)


def results(h=8, w=6, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # the mask is a function of the pixel, so geometric moves keep them aligned
    return dict(img=img, gt_seg_map=(img[..., 0] > 127).astype(np.uint8), seg_fields=['gt_seg_map'],
                img_shape=(h, w))


def aligned(r):
    return np.array_equal(r['gt_seg_map'], (r['img'][..., 0] > 127).astype(np.uint8))


def test_rotate90_moves_image_and_mask():
    np.random.seed(0)
    t = TRANSFORMS.build(dict(type='RandomRotate90', prob=1.0))
    seen = set()
    for _ in range(40):
        r0 = results()
        r = t(results())
        k = next(k for k in range(4) if np.array_equal(r['img'], np.rot90(r0['img'], k)))
        seen.add(k)
        assert aligned(r) and r['img_shape'] == r['img'].shape[:2]
    assert seen == {0, 1, 2, 3}
    never = TRANSFORMS.build(dict(type='RandomRotate90', prob=0.0))(results())
    assert np.array_equal(never['img'], results()['img'])


def tiles(a, rows, cols):
    return [t for band in np.array_split(a, rows, 0) for t in np.array_split(band, cols, 1)]


def test_grid_shuffle_permutes_equal_tiles():
    np.random.seed(1)
    t = TRANSFORMS.build(dict(type='RandomGridShuffle', grid=(2, 2), prob=1.0))
    orders = set()
    for _ in range(30):
        r0 = results(8, 6)
        r = t(results(8, 6))
        src, out = tiles(r0['img'], 2, 2), tiles(r['img'], 2, 2)
        order = tuple(next(j for j in range(4) if np.array_equal(o, src[j])) for o in out)
        orders.add(order)
        assert sorted(order) == [0, 1, 2, 3] and aligned(r)
    assert len(orders) > 5
    odd = t(results(7, 5))  # 3/4 rows x 2/3 cols: all tiles differ in size, none may move
    assert np.array_equal(odd['img'], results(7, 5)['img'])


def test_brightness_contrast_formula():
    r = TRANSFORMS.build(dict(type='RandomBrightnessContrast', brightness_limit=(0.1, 0.1),
                              contrast_limit=(-0.3, -0.3), prob=1.0))(results())
    lut = np.clip(np.arange(256, dtype=np.float32) * np.float32(0.7) + np.float32(25.5), 0, 255).astype(np.uint8)
    assert np.array_equal(r['img'], lut[results()['img']]) and aligned(results())
    assert np.array_equal(r['gt_seg_map'], results()['gt_seg_map'])  # image only


def test_hue_saturation_value_formula():
    r = TRANSFORMS.build(dict(type='HueSaturationValue', hue_shift_limit=(170, 170), sat_shift_limit=(-30, -30),
                              val_shift_limit=(20, 20), prob=1.0))(results())
    hsv = cv2.cvtColor(results()['img'], cv2.COLOR_RGB2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + 170) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] - 30, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + 20, 0, 255)
    assert np.array_equal(r['img'], cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB))
    assert np.array_equal(r['gt_seg_map'], results()['gt_seg_map'])


def test_default_query_pipelines_carry_official_parameters():
    deepglobe = ifa_query_pipeline(episode_pipeline(), flip_prob=0.8, grid_shuffle=True)
    types = [t['type'] for t in deepglobe]
    assert types == ['LoadRGBImageFromFile', 'LoadBinaryMask', 'RandomFlip', 'RandomFlip', 'RandomRotate90',
                     'RandomGridShuffle', 'RandomBrightnessContrast', 'HueSaturationValue', 'FewShotResize']
    assert [t.get('prob') for t in deepglobe[2:8]] == [0.8, 0.8, 0.5, 1.0, 0.5, 1.0]
    assert deepglobe[7] == dict(type='HueSaturationValue', hue_shift_limit=20, sat_shift_limit=30,
                                val_shift_limit=20, prob=1.0)
    other = ifa_query_pipeline(episode_pipeline('label', scale=(64, 64)))
    assert 'RandomGridShuffle' not in [t['type'] for t in other] and other[2]['prob'] == 0.5
    assert other[1] == dict(type='LoadBinaryMask', mode='label') and other[-1]['scale'] == (64, 64)
    Compose([TRANSFORMS.build(t) for t in deepglobe])  # every transform is registered


def test_pack_contract():
    rng = np.random.default_rng(0)

    def img_results(name):
        img = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
        return dict(img=img, gt_seg_map=(img[..., 1] > 127).astype(np.uint8), img_path=name + '.jpg',
                    seg_map_path=name + '.png', ori_shape=(9, 9), img_shape=(6, 5), class_id=2, episode=7)

    query, supports = img_results('q'), [img_results('s0'), img_results('s1')]
    out = TRANSFORMS.build(dict(type='PackFewShotInputs'))(dict(query=query, supports=supports))
    sample = out['data_samples']
    assert torch.equal(out['inputs'], torch.from_numpy(query['img']).permute(2, 0, 1))
    assert torch.equal(sample.support_imgs[1], torch.from_numpy(supports[1]['img']).permute(2, 0, 1))
    assert torch.equal(sample.support_masks, torch.from_numpy(np.stack([s['gt_seg_map'] for s in supports])))
    assert torch.equal(sample.gt_sem_seg.data, torch.from_numpy(query['gt_seg_map'])[None].long())
    assert sample.metainfo == dict(img_path='q.jpg', seg_map_path='q.png', ori_shape=(9, 9), img_shape=(6, 5),
                                   class_id=2, episode=7, support_paths=['s0.jpg', 's1.jpg'],
                                   support_seg_map_paths=['s0.png', 's1.png'])
    supports[1] = dict(supports[1], img=np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match='s1.jpg'):
        TRANSFORMS.build(dict(type='PackFewShotInputs'))(dict(query=query, supports=supports))
