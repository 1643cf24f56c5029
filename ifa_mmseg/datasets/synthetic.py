"""A small synthetic cross-domain few-shot benchmark, written in the real dataset layouts.

``make_synthetic_benchmark(root, seed)`` writes, under one ``root`` (like the official
``dataset/`` folder):

* source domain, FSS-1000 layout: 12 object classes (coloured shapes on smooth
  colourful backgrounds), ``FSS-1000/<shape>/<n>.jpg`` + ``<n>.png``, with the class list
  ``synthetic_splits/source.txt``;
* target domains with a clear appearance shift, each in its real layout:
  Deepglobe (satellite-like land-cover textures, 6 classes), ISIC (skin-lesion-like
  blobs on skin tones, 3 classes) and Chest X-ray (grey-scale, noisy, two lungs).

Everything is a pure function of ``seed`` (and the sizes), so the files are identical
on every run. At the default 64 px the whole benchmark is a few hundred small files;
a model trains on it on a CPU in minutes. Command line::

    python -m ifa_mmseg.datasets.synthetic OUT_DIR [--seed 0] [--size 64]
"""
import argparse
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from . import chestxray, deepglobe, fss1000, isic

SHAPES = ('disk', 'ring', 'square', 'frame', 'triangle', 'diamond', 'cross', 'crescent', 'half_disk',
          'ellipse', 'l_shape', 'hexagon')
SOURCE_CLASS_LIST = 'synthetic_splits/source.txt'
DOMAINS = ('source', 'deepglobe', 'isic', 'chestxray')
JPEG = dict(quality=95)


def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], as (y, x) [size, size] arrays."""
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    return np.meshgrid(axis, axis, indexing='ij')


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a random ``cells`` x ``cells`` field upsampled bilinearly."""
    small = (rng.random((cells, cells, channels)) * 255).astype(np.uint8)
    planes = [np.asarray(Image.fromarray(small[..., c]).resize((size, size), Image.BILINEAR)) for c in range(channels)]
    return np.stack(planes, axis=-1).astype(np.float32) / 255


def shape_mask(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean [size, size] mask of one random instance (position, scale, rotation) of ``kind``."""
    y, x = _grid(size)
    cy, cx = rng.uniform(-0.25, 0.25, 2)
    radius = rng.uniform(0.4, 0.65)
    theta = rng.uniform(0, 2 * np.pi) if kind not in ('half_disk', 'triangle', 'l_shape') else rng.uniform(-0.3, 0.3)
    u = ((x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)) / radius
    v = (-(x - cx) * np.sin(theta) + (y - cy) * np.cos(theta)) / radius
    r = np.sqrt(u ** 2 + v ** 2)
    box = np.maximum(np.abs(u), np.abs(v))
    masks: Dict[str, Callable[[], np.ndarray]] = dict(
        disk=lambda: r <= 1,
        ring=lambda: (r <= 1) & (r >= 0.55),
        square=lambda: box <= 0.8,
        frame=lambda: (box <= 0.9) & (box >= 0.55),
        triangle=lambda: (v <= 0.7) & (v >= 2 * np.abs(u) - 0.9),
        diamond=lambda: np.abs(u) + np.abs(v) <= 1,
        cross=lambda: ((np.abs(u) <= 0.25) | (np.abs(v) <= 0.25)) & (box <= 0.95),
        crescent=lambda: (r <= 1) & (np.sqrt((u - 0.5) ** 2 + v ** 2) > 0.8),
        half_disk=lambda: (r <= 1) & (v <= 0.1),
        ellipse=lambda: u ** 2 + (v / 0.45) ** 2 <= 1,
        l_shape=lambda: (box <= 0.9) & ((u <= -0.35) | (v >= 0.35)),
        hexagon=lambda: (np.abs(v) <= 0.78) & (np.abs(u) + np.abs(v) / np.sqrt(3) <= 0.9),
    )
    return masks[kind]()


def _source_image(kind: str, class_index: int, size: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A coloured shape of ``kind`` on a smooth, colourful background."""
    mask = shape_mask(kind, size, rng)
    background = 0.25 + 0.6 * _smooth_noise(rng, size, 3, 3)
    hue = (class_index / len(SHAPES) + rng.uniform(-0.04, 0.04)) % 1.0
    colour = np.array(Image.fromarray(np.uint8([[[hue * 255, 200, 230]]]), 'HSV').convert('RGB'))[0, 0] / 255
    y, x = _grid(size)
    stripes = 0.85 + 0.15 * np.sin(rng.uniform(4, 9) * (x + y) * np.pi)[..., None]
    img = np.where(mask[..., None], colour * stripes, background)
    img = img + rng.normal(0, 0.02, img.shape)
    return np.clip(img * 255, 0, 255).astype(np.uint8), mask


def land_cover_texture(class_index: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A [size, size, 3] float texture in [0, 1] of one of the six DeepGlobe classes."""
    y, x = _grid(size)
    noise = rng.random((size, size, 1))
    if class_index == 0:  # agriculture: field stripes
        angle = rng.uniform(0, np.pi)
        stripes = (np.sin((x * np.cos(angle) + y * np.sin(angle)) * rng.uniform(12, 20)) > 0)[..., None]
        return np.where(stripes, [0.75, 0.7, 0.25], [0.45, 0.55, 0.2]) + 0.05 * noise
    if class_index == 1:  # urban: grey blocks
        block = max(size // 8, 2)
        cells = (np.arange(size) // block)
        grey = 0.35 + 0.4 * ((cells[:, None] * 7 + cells[None, :] * 3) % 5 / 4)
        return grey[..., None] * np.ones(3) + 0.1 * noise
    if class_index == 2:  # rangeland: speckled yellow-green
        return np.array([0.6, 0.65, 0.35]) + 0.25 * (noise - 0.5)
    if class_index == 3:  # forest: dark green blotches
        return np.array([0.1, 0.3, 0.1]) + 0.25 * _smooth_noise(rng, size, 6) * [0.3, 1.0, 0.3]
    if class_index == 4:  # water: smooth dark blue
        return np.array([0.1, 0.2, 0.45]) + 0.08 * _smooth_noise(rng, size, 2)
    return np.array([0.8, 0.72, 0.55]) + 0.15 * (noise - 0.5)  # barren: sand


def _tile(size: int, classes: Sequence[int], rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A satellite-like tile split into one Voronoi region per class; returns (image, region map)."""
    y, x = _grid(size)
    angles = rng.uniform(0, 2 * np.pi) + np.arange(len(classes)) * 2 * np.pi / len(classes)
    seeds = 0.55 * np.stack([np.sin(angles), np.cos(angles)], 1) + rng.uniform(-0.1, 0.1, (len(classes), 2))
    dist = (y[None] - seeds[:, 0, None, None]) ** 2 + (x[None] - seeds[:, 1, None, None]) ** 2
    region = np.argmin(dist, axis=0)
    textures = np.stack([land_cover_texture(c, size, rng) for c in classes])
    img = np.take_along_axis(textures, region[None, ..., None], axis=0)[0]
    return np.clip(img * 255, 0, 255).astype(np.uint8), np.asarray(classes)[region]


def _lesion(class_index: int, size: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A skin-lesion-like blob (colour and border by class) on a skin-toned background."""
    y, x = _grid(size)
    cy, cx = rng.uniform(-0.15, 0.15, 2)
    phi = np.arctan2(y - cy, x - cx)
    wobble = sum(rng.uniform(0, 0.08 * (1 + class_index)) * np.sin(k * phi + rng.uniform(0, 6)) for k in (2, 3, 5))
    mask = np.sqrt((y - cy) ** 2 + (x - cx) ** 2) <= rng.uniform(0.35, 0.55) * (1 + wobble)
    skin = np.array([0.86, 0.68, 0.6]) + 0.06 * (_smooth_noise(rng, size, 3) - 0.5)
    colours = ([0.45, 0.28, 0.18], [0.62, 0.48, 0.32], [0.2, 0.12, 0.14])
    spots = _smooth_noise(rng, size, 5 + 3 * class_index)
    lesion = np.array(colours[class_index]) * (0.7 + 0.6 * spots)
    img = np.where(mask[..., None], lesion, skin) + rng.normal(0, 0.015, (size, size, 3))
    return np.clip(img * 255, 0, 255).astype(np.uint8), mask


def _xray(size: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A grey-scale, noisy chest-X-ray-like image and its two-lung mask."""
    y, x = _grid(size)
    body = ((x / 0.85) ** 2 + ((y - 0.1) / 1.1) ** 2) <= 1
    lungs = np.zeros((size, size), bool)
    for side in (-1, 1):
        cx = side * rng.uniform(0.3, 0.4)
        lungs |= ((x - cx) / rng.uniform(0.2, 0.27)) ** 2 + ((y + 0.05) / rng.uniform(0.5, 0.6)) ** 2 <= 1
    ribs = 0.05 * np.sin(y * rng.uniform(14, 18) * np.pi)
    grey = np.where(body, 0.7, 0.08) - 0.4 * lungs + ribs * body + rng.normal(0, 0.06, (size, size))
    return np.clip(grey * 255, 0, 255).astype(np.uint8), lungs


def _save(img: np.ndarray, path: str, **kwargs) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path, **kwargs)


def _mask_png(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.uint8) * 255


def write_deepglobe(root: str, rng: np.random.Generator, size: int, num_tiles: int) -> None:
    """Write ``num_tiles`` Deepglobe-like tiles in the Deepglobe layout under ``root``.

    Tile ``t`` (``<100 + t>_sat_00.jpg``, JPEG quality 95) holds classes ``t mod 6``,
    ``t+1 mod 6`` and one more drawn from ``rng``; it is copied into the folder of every
    class it shows, beside a 3-channel 0/255 PNG mask of that class, as the official
    preprocessing writes them.
    """
    base = os.path.join(root, deepglobe.BASE_DIR)
    for t in range(num_tiles):
        third = rng.choice([c for c in range(6) if c not in (t % 6, (t + 1) % 6)])
        img, labels = _tile(size, [t % 6, (t + 1) % 6, int(third)], rng)
        image_name, mask_name = deepglobe.tile_names(str(100 + t), '00')
        for c in np.unique(labels).tolist():
            folder = os.path.join(base, str(c + 1))
            _save(img, os.path.join(folder, deepglobe.IMAGE_DIR, image_name), **JPEG)
            _save(np.repeat(_mask_png(labels == c)[..., None], 3, -1),
                  os.path.join(folder, deepglobe.MASK_DIR, mask_name))


def make_synthetic_benchmark(root: str, seed: int = 0, size: int = 64, images_per_class: int = 10,
                             num_tiles: int = 24, lesions_per_class: int = 8, num_xrays: int = 20) -> Dict[str, dict]:
    """Write the benchmark under ``root``; return a dataset config (``type``, ``data_root``, ...) per domain.

    Args:
        root: output folder (created; existing files of the same names are replaced).
        seed: the only source of randomness.
        size: image side in pixels.
        images_per_class: source images per shape class (named ``1.jpg`` ...).
        num_tiles: Deepglobe-like tiles; tile ``t`` holds classes ``t mod 6``, ``t+1 mod 6``
            and one more, so every class has at least ``num_tiles // 3`` images.
        lesions_per_class: ISIC-like images per class.
        num_xrays: Chest-X-ray-like images.
    """
    rngs = {d: np.random.default_rng([seed, i]) for i, d in enumerate(DOMAINS)}

    for c, kind in enumerate(SHAPES):
        for n in range(1, images_per_class + 1):
            img, mask = _source_image(kind, c, size, rngs['source'])
            _save(img, os.path.join(root, fss1000.BASE_DIR, kind, f'{n}.jpg'), **JPEG)
            _save(_mask_png(mask), os.path.join(root, fss1000.BASE_DIR, kind, f'{n}.png'))
    os.makedirs(os.path.join(root, os.path.dirname(SOURCE_CLASS_LIST)), exist_ok=True)
    with open(os.path.join(root, SOURCE_CLASS_LIST), 'w') as f:
        f.write(''.join(f'{k}\n' for k in SHAPES))

    write_deepglobe(root, rngs['deepglobe'], size, num_tiles)

    rng = rngs['isic']
    for c in range(3):
        for n in range(lesions_per_class):
            stem = f'ISIC_{c * 1000 + n:07d}'
            img, mask = _lesion(c, size, rng)
            _save(img, os.path.join(root, isic.BASE_DIR, isic.IMAGE_DIR, str(c + 1), stem + '.jpg'), **JPEG)
            _save(_mask_png(mask), os.path.join(root, isic.BASE_DIR, isic.MASK_DIR, stem + isic.MASK_SUFFIX))

    rng = rngs['chestxray']
    for n in range(num_xrays):
        stem = f'CHNCXR_{n + 1:04d}_{n % 2}'
        img, mask = _xray(size, rng)
        base = os.path.join(root, chestxray.BASE_DIR)
        _save(img, os.path.join(base, chestxray.IMAGE_DIR, stem + '.png'))
        _save(_mask_png(mask), os.path.join(base, chestxray.MASK_DIR, stem + chestxray.MASK_SUFFIX))

    return dict(source=dict(type='FSS1000Dataset', data_root=root, split='trn', ann_file=SOURCE_CLASS_LIST),
                deepglobe=dict(type='DeepglobeDataset', data_root=root),
                isic=dict(type='ISICDataset', data_root=root),
                chestxray=dict(type='ChestXrayDataset', data_root=root))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description='Write the synthetic cross-domain few-shot benchmark.')
    parser.add_argument('out_dir', help='output folder (the data_root of the synthetic datasets)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, default=64, help='image side in pixels')
    args = parser.parse_args(argv)
    configs = make_synthetic_benchmark(args.out_dir, seed=args.seed, size=args.size)
    for domain, cfg in configs.items():
        print(f'{domain}: {cfg}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
