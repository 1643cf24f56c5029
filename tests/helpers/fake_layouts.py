"""Tiny, deterministic stand-ins for the five datasets, written in their real on-disk layouts.

Every file's content is a function of its name (and ``seed``) only, so a layout written
twice, or in another order, is byte-identical. Masks carry grey levels around the
threshold (127 / 128) and, for PASCAL, other classes and 255 boundaries.
"""
import os
import zlib
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ifa_mmseg.datasets.layout import SPLITS_DIR, read_lines

Size = Tuple[int, int]  # (h, w)


def _rng(key: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(key.encode()), seed])


def _size(rng: np.random.Generator, size: Optional[Size]) -> Size:
    return size if size is not None else (int(rng.integers(18, 40)), int(rng.integers(18, 40)))


def fake_image(key: str, size: Optional[Size] = None, seed: int = 0) -> np.ndarray:
    """A smooth RGB uint8 image (gradient and a blob) determined by ``key``."""
    rng = _rng('img:' + key, seed)
    h, w = _size(rng, size)
    y, x = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing='ij')
    a, b = rng.uniform(0, 255, (2, 3))
    img = a * (1 - x[..., None]) + b * y[..., None]
    cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.35)
    img += np.where(((y - cy) ** 2 + (x - cx) ** 2 < r * r)[..., None], rng.uniform(-80, 80, 3), 0)
    return np.clip(img, 0, 255).astype(np.uint8)


def fake_mask(key: str, size: Size, seed: int = 0, empty: bool = False) -> np.ndarray:
    """A grey uint8 mask: an ellipse of levels >= 128 (incl. exactly 128) on levels < 128 (incl. 127)."""
    rng = _rng('mask:' + key, seed)
    h, w = size
    if empty:
        return np.zeros((h, w), np.uint8)
    y, x = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing='ij')
    cy, cx, ry, rx = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.4)
    inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
    fg = rng.choice(np.array([128, 129, 200, 255], np.uint8), (h, w))
    bg = rng.choice(np.array([0, 0, 40, 127], np.uint8), (h, w))
    return np.where(inside, fg, bg)


def _save(array: np.ndarray, path: str, mode: Optional[str] = None) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.fromarray(array)
    if mode is not None:
        img = img.convert(mode)
    img.save(path, **(dict(quality=90) if path.endswith('.jpg') else {}))
    return path


def write_pair(img_path: str, mask_path: str, key: str, size: Optional[Size] = None, seed: int = 0,
               mask_mode: str = 'L', grey: bool = False, empty: bool = False) -> None:
    """Write one image and its mask, both derived from ``key``."""
    img = fake_image(key, size, seed)
    _save(img, img_path, 'L' if grey else None)
    _save(fake_mask(key, img.shape[:2], seed, empty), mask_path, mask_mode)


def write_deepglobe(root: str, counts: Sequence[int] = (6, 7, 6, 8, 6, 7), seed: int = 0,
                    size: Optional[Size] = None) -> None:
    """``Deepglobe/04_train_cat/<c>/test/{origin,groundtruth}``; tiles shared between classes."""
    tiles = [f'{100 + t // 4}_sat_{t % 4}{(t * 3) % 6}' for t in range(16)]
    for c, count in enumerate(counts):
        folder = os.path.join(root, 'Deepglobe', '04_train_cat', str(c + 1), 'test')
        for n in range(count):
            tile = tiles[(3 * c + n) % len(tiles)]
            stem, cell = tile.split('_sat_')
            img = fake_image(tile, size, seed)  # the same tile in every class folder
            _save(img, os.path.join(folder, 'origin', tile + '.jpg'))
            _save(fake_mask(f'{tile}/{c}', img.shape[:2], seed), os.path.join(folder, 'groundtruth',
                                                                              f'{stem}_mask_{cell}.png'), 'RGB')


def write_isic(root: str, counts: Sequence[int] = (7, 6, 8), seed: int = 0, size: Optional[Size] = None) -> None:
    """``ISIC/ISIC2018_Task1-2_Training_Input/<c>/`` images, masks at the ground-truth root."""
    base = os.path.join(root, 'ISIC')
    for c, count in enumerate(counts):
        for n in range(count):
            stem = f'ISIC_{c * 100 + n * 7:07d}'
            write_pair(os.path.join(base, 'ISIC2018_Task1-2_Training_Input', str(c + 1), stem + '.jpg'),
                       os.path.join(base, 'ISIC2018_Task1_Training_GroundTruth', stem + '_segmentation.png'),
                       stem, size, seed)


def write_chestxray(root: str, count: int = 8, seed: int = 0, size: Optional[Size] = (410, 420)) -> List[str]:
    """``LungSegmentation/CXR_png/<stem>.png`` (grey) and ``masks/<stem>_mask.png``; returns the stems."""
    base = os.path.join(root, 'LungSegmentation')
    stems = [f'{"CHNCXR" if n % 3 else "MCUCXR"}_{n:04d}_{n % 2}' for n in range(count)]
    for stem in stems:
        write_pair(os.path.join(base, 'CXR_png', stem + '.png'), os.path.join(base, 'masks', stem + '_mask.png'),
                   stem, size, seed, grey=True)
    return stems


def write_fss1000(root: str, classes: Iterable[str], images: int = 10, seed: int = 0,
                  size: Optional[Size] = (12, 10)) -> None:
    """``FSS-1000/<class>/<n>.jpg`` with ``<n>.png``, n = 1..``images``."""
    for name in classes:
        folder = os.path.join(root, 'FSS-1000', name)
        for n in range(1, images + 1):
            write_pair(os.path.join(folder, f'{n}.jpg'), os.path.join(folder, f'{n}.png'), f'{name}/{n}', size,
                       seed, mask_mode='RGB')


def fss_classes(split: str) -> List[str]:
    """The shipped FSS-1000 class list of ``split``."""
    return sorted(read_lines(SPLITS_DIR / 'fss' / f'{split}.txt'))


def pascal_classes_of(names: Iterable[str]) -> Dict[str, List[int]]:
    """Classes (0-19) under which each name is listed in the shipped trn/val lists."""
    wanted = set(names)
    classes: Dict[str, List[int]] = {n: [] for n in wanted}
    for path in sorted((SPLITS_DIR / 'pascal').glob('*/fold*.txt')):
        for line in read_lines(path):
            name, cc = line.split('__')
            if name in wanted and int(cc) - 1 not in classes[name]:
                classes[name].append(int(cc) - 1)
    return classes


def write_pascal(root: str, names: Iterable[str], seed: int = 0, size: Optional[Size] = None) -> None:
    """``VOC2012/JPEGImages/<name>.jpg`` and label maps ``SegmentationClassAug/<name>.png``.

    Each label map holds an ellipse of every class the name is listed under (label
    ``c + 1``), a 255 ring around the first, and a distractor class; some are palette
    PNGs and some grey, as in the wild.
    """
    base = os.path.join(root, 'VOC2012')
    for name, classes in sorted(pascal_classes_of(names).items()):
        img = fake_image(name, size, seed)
        h, w = img.shape[:2]
        rng = _rng('label:' + name, seed)
        y, x = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing='ij')
        labels = np.zeros((h, w), np.uint8)
        labels[(y < 0.2) & (x < 0.3)] = (max(classes) + 3) % 20 + 1  # another object
        for k, c in enumerate(classes):
            d = ((y - rng.uniform(0.4, 0.6)) / 0.3) ** 2 + ((x - rng.uniform(0.3, 0.7)) / (0.35 - 0.05 * k)) ** 2
            if k == 0:
                labels[(d >= 1) & (d < 1.4)] = 255
            labels[d < 1] = c + 1
        _save(img, os.path.join(base, 'JPEGImages', name + '.jpg'))
        if zlib.crc32(name.encode()) % 2:
            label_img = Image.frombytes('P', (w, h), labels.tobytes())
            label_img.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        else:
            label_img = Image.fromarray(labels)
        os.makedirs(os.path.join(base, 'SegmentationClassAug'), exist_ok=True)
        label_img.save(os.path.join(base, 'SegmentationClassAug', name + '.png'))


def tree_digest(root: str) -> str:
    """CRC32 over every file's relative path and bytes (detects a drifting generator)."""
    crc = 0
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            crc = zlib.crc32(os.path.relpath(path, root).encode(), crc)
            with open(path, 'rb') as f:
                crc = zlib.crc32(f.read(), crc)
    return f'{crc:08x}'
