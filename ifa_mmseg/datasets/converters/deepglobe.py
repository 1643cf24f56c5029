"""Prepare DeepGlobe land-cover tiles in the layout read by the official ``DatasetDeepglobe``.

The official loader is ``data/deepglobe.py``; the official preparation is
``data/preprocess_deepglobe.py`` (its steps 1-4, ``GetBinaryMap`` for step 3).

Input: the Kaggle "DeepGlobe Land Cover Classification" ``train/`` folder, i.e.
pairs ``<id>_sat.jpg`` (2448x2448 RGB JPEG) and ``<id>_mask.png`` (colour-coded
RGB label map). Output, written in one run (all folders are created here)::

    DATA_ROOT/Deepglobe/04_train_cat/<c>/test/origin/<id>_sat_<ij>.jpg
    DATA_ROOT/Deepglobe/04_train_cat/<c>/test/groundtruth/<id>_mask_<ij>.png
    DATA_ROOT/Deepglobe/04_train_cat/<c>.txt      (sorted mask stems of class c)

for c = 1..6. ``i`` is the tile row and ``j`` the tile column of a ``grid x grid``
cut (default 6x6 tiles of 408 px).

What is kept, in the order of the official ``preprocess_deepglobe.py`` steps:

1. Every image and mask is cut into ``grid x grid`` tiles of ``tile`` pixels.
2. A tile is kept when its mask holds more than one distinct colour and every
   colour covers strictly more than ``min_frac`` (4.8 %) of the tile. Any colour
   counts: the black "unknown" class and impure values too. (The official used
   PIL ``getcolors()``, which returns None above 256 colours and then crashes;
   such a tile has a colour below 1/257 < 4.8 % and is simply dropped here.)
3. A kept tile joins class folder ``c`` when at least one pixel has *exactly*
   the colour of class ``c``; its mask there is 255 on those pixels, 0 elsewhere.
   A tile can belong to several classes, or to none (e.g. unknown + impure).
4. The image tile is written next to each of its masks.

Class folders. The official step 3 (``GetBinaryMap``) compared OpenCV (BGR) pixels
against triplets taken from the RGB colour table, so its folders end up holding
these RGB colours, which are the ones matched here::

    1 agriculture (255, 255, 0)    2 urban  (0, 255, 255)   3 rangeland (255, 0, 255)
    4 forest      (0, 255, 0)      5 water  (0, 0, 255)     6 barren    (255, 255, 255)

Pixel fidelity.

* Image tiles are decoded and encoded with OpenCV, JPEG quality 95 and OpenCV's
  default 4:2:0 chroma subsampling, which is what the official step 1
  (``cv2.imwrite``) did; with the same libjpeg-turbo the tile files are byte for
  byte the official ``02_train_crop`` tiles, so the loaders see the authors'
  pixels. A lossless JPEG crop is not an option: 408 px offsets are not multiples
  of the 16 px 4:2:0 block, and it would not give the official pixels anyway.
  Each tile is encoded once, whatever the number of class folders it goes to: the
  same bytes are written to each (or hard-linked with ``link=True``); the
  official's intermediate ``02_train_crop``/``03_train_filter`` folders are not
  written.
* Masks never go through a lossy codec. The binary masks are single-channel
  8-bit PNGs (0/255); the official wrote the same values into three identical
  channels, so a grayscale read (the loaders' ``convert('L')``) gives the same
  pixels.

Speed: about 0.3 s per source image and process (803 Kaggle images: ~4-5 min
with one process; ``nproc`` spreads the images over worker processes).
"""
import argparse
import multiprocessing
import os
import shutil
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ...utils.errors import ConversionError
from ..deepglobe import BASE_DIR, IMAGE_DIR, MASK_DIR, tile_names
from .common import format_table, list_names

#: class folder -> (name, RGB colour); see the module docstring for the BGR story.
CLASSES: Dict[int, Tuple[str, Tuple[int, int, int]]] = {
    1: ('agriculture', (255, 255, 0)),
    2: ('urban', (0, 255, 255)),
    3: ('rangeland', (255, 0, 255)),
    4: ('forest', (0, 255, 0)),
    5: ('water', (0, 0, 255)),
    6: ('barren', (255, 255, 255)),
}
SAT_SUFFIX = '_sat.jpg'
MASK_SUFFIX = '_mask.png'
JPEG_QUALITY = 95  # OpenCV's default, used by the official crop step


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Pack an ``[H, W, 3]`` uint8 RGB array into one int32 code per pixel."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


CLASS_CODES: Dict[int, int] = {
    c: int(pack_rgb(np.array(colour, np.uint8))) for c, (_, colour) in CLASSES.items()}


def tile_slices(grid: int, tile: int) -> Iterator[Tuple[int, int, Tuple[slice, slice]]]:
    """Yield ``(i, j, (rows, cols))`` for the tiles of a ``grid x grid`` cut, row-major."""
    for i in range(grid):
        for j in range(grid):
            yield i, j, (slice(i * tile, (i + 1) * tile), slice(j * tile, (j + 1) * tile))


def colour_counts(codes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Distinct packed colours of a mask tile and their pixel counts."""
    return np.unique(codes, return_counts=True)


def keep_tile(counts: np.ndarray, n_pixels: int, min_frac: float = 0.048) -> bool:
    """The official colour filter, given the colour counts of a tile of ``n_pixels``.

    True when the tile has more than one colour and each one covers strictly
    more than ``min_frac`` of its pixels.
    """
    return counts.size > 1 and counts.min() / n_pixels > min_frac


def classes_present(colours: np.ndarray) -> List[int]:
    """Class folders (1..6) whose exact colour is among the packed ``colours``."""
    return [c for c, code in CLASS_CODES.items() if np.any(colours == code)]


def binary_mask(codes: np.ndarray, cls: int) -> np.ndarray:
    """uint8 mask: 255 where the pixel has exactly the colour of class ``cls``, else 0."""
    return np.where(codes == CLASS_CODES[cls], 255, 0).astype(np.uint8)


@dataclass(frozen=True)
class Pair:
    """One source image and its colour mask."""
    image_id: str
    image: Path
    mask: Path


def find_pairs(src_dir: Path) -> List[Pair]:
    """Pair ``<id>_sat.jpg`` with ``<id>_mask.png`` in ``src_dir``; other files are ignored.

    Raises:
        ConversionError: the folder is missing, holds no image, or a file lacks its partner.
    """
    if not src_dir.is_dir():
        raise ConversionError(f'source folder not found: {src_dir}')
    names = sorted(p.name for p in src_dir.iterdir())
    sats = {n[:-len(SAT_SUFFIX)] for n in names if n.endswith(SAT_SUFFIX)}
    masks = {n[:-len(MASK_SUFFIX)] for n in names if n.endswith(MASK_SUFFIX)}
    if not sats:
        hint = ''
        if (src_dir / 'train').is_dir():
            hint = f'; did you mean {src_dir / "train"}?'
        raise ConversionError(
            f'no *{SAT_SUFFIX} images in {src_dir}: pass the Kaggle DeepGlobe train/ folder{hint}')
    unpaired = sorted([src_dir / f'{i}{SAT_SUFFIX}' for i in sats - masks]
                      + [src_dir / f'{i}{MASK_SUFFIX}' for i in masks - sats])
    if unpaired:
        raise ConversionError(
            f'{len(unpaired)} file(s) in {src_dir} without their partner '
            f'(<id>{SAT_SUFFIX} needs <id>{MASK_SUFFIX} and vice versa):\n{list_names(unpaired)}')
    return [Pair(i, src_dir / f'{i}{SAT_SUFFIX}', src_dir / f'{i}{MASK_SUFFIX}') for i in sorted(sats)]


def read_bgr(path: Path) -> np.ndarray:
    """Read a colour image with OpenCV (BGR uint8), as the official step 1 did."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise ConversionError(f'cannot read {path}: {e}') from e
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ConversionError(f'cannot decode image file {path}')
    return image


@dataclass(frozen=True)
class Options:
    """Parameters of one conversion run (picklable, for worker processes)."""
    out_dir: Path
    tile: int = 408
    grid: int = 6
    min_frac: float = 0.048
    link: bool = False


@dataclass
class PairResult:
    """What one source pair contributed."""
    tiles: int = 0
    kept: int = 0
    class_stems: Dict[int, List[str]] = field(default_factory=dict)
    image_tiles: int = 0  # distinct image tiles written


def convert_pair(pair: Pair, opts: Options) -> PairResult:
    """Cut, filter and binarise one image/mask pair and write its tiles under ``opts.out_dir``."""
    image = read_bgr(pair.image)
    mask_bgr = read_bgr(pair.mask)
    side = opts.tile * opts.grid
    if image.shape[:2] != mask_bgr.shape[:2]:
        raise ConversionError(
            f'size mismatch: {pair.image} is {image.shape[1]}x{image.shape[0]} but '
            f'{pair.mask} is {mask_bgr.shape[1]}x{mask_bgr.shape[0]}')
    if image.shape[:2] != (side, side):
        raise ConversionError(
            f'{pair.image} is {image.shape[1]}x{image.shape[0]}, expected {side}x{side} '
            f'(grid {opts.grid} x tile {opts.tile}; see --tile/--grid)')
    codes = pack_rgb(mask_bgr[..., ::-1])
    result = PairResult()
    for i, j, window in tile_slices(opts.grid, opts.tile):
        result.tiles += 1
        tile_codes = codes[window]
        colours, counts = colour_counts(tile_codes)
        if not keep_tile(counts, tile_codes.size, opts.min_frac):
            continue
        result.kept += 1
        classes = classes_present(colours)
        if not classes:
            continue
        image_name, mask_name = tile_names(pair.image_id, f'{i}{j}')
        ok, jpeg = cv2.imencode('.jpg', image[window], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ConversionError(f'cannot encode tile {image_name} of {pair.image}')
        result.image_tiles += 1
        first_copy: Optional[Path] = None
        for cls in classes:
            cls_dir = opts.out_dir / str(cls)
            _, png = cv2.imencode('.png', binary_mask(tile_codes, cls))
            (cls_dir / MASK_DIR / mask_name).write_bytes(png.tobytes())
            dst = cls_dir / IMAGE_DIR / image_name
            if opts.link and first_copy is not None:
                try:
                    os.link(first_copy, dst)
                except OSError:
                    dst.write_bytes(jpeg.tobytes())
            else:
                dst.write_bytes(jpeg.tobytes())
                first_copy = dst
            result.class_stems.setdefault(cls, []).append(mask_name[:-4])
    return result


@dataclass
class Summary:
    """Totals of a conversion run."""
    out_dir: Path
    images: int = 0
    tiles: int = 0
    kept: int = 0
    image_tiles: int = 0
    class_stems: Dict[int, List[str]] = field(default_factory=dict)

    @property
    def class_counts(self) -> Dict[int, int]:
        return {c: len(self.class_stems.get(c, [])) for c in CLASSES}

    def add(self, part: PairResult) -> None:
        self.images += 1
        self.tiles += part.tiles
        self.kept += part.kept
        self.image_tiles += part.image_tiles
        for cls, stems in part.class_stems.items():
            self.class_stems.setdefault(cls, []).extend(stems)


def prepare_output(out_dir: Path, overwrite: bool = False) -> None:
    """Create the image and mask folders of every class, refusing to mix with old output."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise ConversionError(f'{out_dir} exists and is not empty; pass --overwrite to replace it')
        shutil.rmtree(out_dir)
    for cls in CLASSES:
        for sub in (IMAGE_DIR, MASK_DIR):
            (out_dir / str(cls) / sub).mkdir(parents=True, exist_ok=True)


def prepare_deepglobe(src_dir, data_root, tile: int = 408, grid: int = 6, min_frac: float = 0.048,
                      nproc: int = 1, link: bool = False, overwrite: bool = False,
                      progress: bool = True) -> Summary:
    """Convert a Kaggle DeepGlobe ``train/`` folder into ``DATA_ROOT/Deepglobe/04_train_cat``.

    Args:
        src_dir: folder of ``<id>_sat.jpg`` / ``<id>_mask.png`` pairs.
        data_root: the ``data_root`` of the dataset configs.
        tile, grid: tile side in pixels and tiles per side; images must be ``tile * grid`` square.
        min_frac: the per-colour fraction a kept tile must exceed.
        nproc: worker processes.
        link: hard-link the copies of an image tile in its second and later class folders.
        overwrite: replace an existing, non-empty output folder.
        progress: show a tqdm bar on stderr.

    Returns:
        the :class:`Summary` of the run; the ``<c>.txt`` lists are written too.
    """
    if not 1 <= grid <= 10:
        raise ConversionError(f'--grid must be 1..10 (the loader reads the tile index as two digits), got {grid}')
    if tile < 1 or not 0 <= min_frac < 1:
        raise ConversionError(f'invalid --tile {tile} or --min-frac {min_frac}')
    pairs = find_pairs(Path(src_dir))
    opts = Options(Path(data_root) / BASE_DIR, tile, grid, min_frac, link)
    prepare_output(opts.out_dir, overwrite)
    summary = Summary(opts.out_dir)
    work = partial(convert_pair, opts=opts)
    with tqdm(total=len(pairs), unit='img', desc='DeepGlobe', disable=not progress) as bar:
        if nproc > 1:
            with multiprocessing.Pool(nproc) as pool:
                for part in pool.imap_unordered(work, pairs, chunksize=1):
                    summary.add(part)
                    bar.update()
        else:
            for pair in pairs:
                summary.add(work(pair))
                bar.update()
    for cls in CLASSES:
        stems = sorted(summary.class_stems.get(cls, []))
        summary.class_stems[cls] = stems
        (opts.out_dir / f'{cls}.txt').write_text(''.join(f'{s}\n' for s in stems))
    return summary


def format_summary(summary: Summary, min_frac: float) -> str:
    """Human-readable report: kept tiles and per-class counts."""
    rows = [(c, CLASSES[c][0], str(CLASSES[c][1]), n) for c, n in summary.class_counts.items()]
    files = sum(summary.class_counts.values())
    return '\n'.join([
        f'DeepGlobe: {summary.images} images -> {summary.tiles} tiles; '
        f'{summary.kept} kept by the colour filter (> {min_frac:g} per colour, more than one colour)',
        'tiles per class folder:',
        format_table(rows),
        f'{summary.image_tiles} distinct image tiles in {files} class-folder entries under {summary.out_dir}',
    ])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='tools/dataset_converters/deepglobe.py',
        description='Cut, filter and split DeepGlobe into the per-class folders of IFA '
                    f'(DATA_ROOT/{BASE_DIR}/<1..6>/{{{IMAGE_DIR},{MASK_DIR}}}).')
    parser.add_argument('src_dir', type=Path, help='Kaggle DeepGlobe train/ folder (<id>_sat.jpg, <id>_mask.png)')
    parser.add_argument('data_root', type=Path, help='dataset root (the data_root of the configs)')
    parser.add_argument('--tile', type=int, default=408, help='tile side in pixels (default 408)')
    parser.add_argument('--grid', type=int, default=6, help='tiles per image side (default 6)')
    parser.add_argument('--min-frac', type=float, default=0.048,
                        help='each colour of a kept tile must cover more than this fraction (default 0.048)')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes (default 1)')
    parser.add_argument('--link', action='store_true',
                        help='hard-link repeated image tiles across class folders instead of writing copies')
    parser.add_argument('--overwrite', action='store_true', help=f'replace an existing {BASE_DIR} folder')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = prepare_deepglobe(args.src_dir, args.data_root, args.tile, args.grid, args.min_frac,
                                    args.nproc, args.link, args.overwrite, not args.no_progress)
    except ConversionError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(format_summary(summary, args.min_frac))
    return 0
