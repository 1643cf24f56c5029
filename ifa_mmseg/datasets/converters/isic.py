"""Sort ISIC 2018 Task 1 training images into the class folders read by the official ``DatasetISIC``.

The official loader is ``data/isic.py``; the official sorting script is ``data/preprocess_isic.py``.

Input: the folder holding the two extracted challenge archives::

    SRC_ROOT/ISIC2018_Task1-2_Training_Input/ISIC_xxxxxxx.jpg
    SRC_ROOT/ISIC2018_Task1_Training_GroundTruth/ISIC_xxxxxxx_segmentation.png

Output (``DATA_ROOT/ISIC``, or ``SRC_ROOT`` itself when no DATA_ROOT is given)::

    ISIC/ISIC2018_Task1-2_Training_Input/{1,2,3}/ISIC_xxxxxxx.jpg
    ISIC/ISIC2018_Task1_Training_GroundTruth/ISIC_xxxxxxx_segmentation.png

The class of each image comes from ``class_id.csv`` (columns ``ID,Class``):
1 nevus (1867 images), 2 seborrheic_keratosis (208), 3 melanoma (519). Images
are copied (or symlinked); the masks stay at the root of the GroundTruth folder,
where the loader reads them (copied or linked there when DATA_ROOT is elsewhere).
Nothing is written before every listed image and mask has been found.
"""
import argparse
import csv
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ...utils.errors import ConversionError
from ..isic import BASE_DIR, IMAGE_DIR, MASK_DIR, MASK_SUFFIX
from .common import format_table, list_names, place_file

CLASSES: Dict[str, int] = {'nevus': 1, 'seborrheic_keratosis': 2, 'melanoma': 3}
EXPECTED_COUNTS: Dict[int, int] = {1: 1867, 2: 208, 3: 519}
_SPLITS = Path(__file__).resolve().parent.parent / 'splits'
#: where the dataset package ships the csv; the first existing one is the default
CLASS_CSV_CANDIDATES = (_SPLITS / 'isic' / 'class_id.csv', _SPLITS / 'isic_class_id.csv',
                        _SPLITS / 'class_id.csv')


def mask_name(image_id: str) -> str:
    """Name of the ground-truth mask of an ISIC image id."""
    return f'{image_id}{MASK_SUFFIX}'


def default_class_csv() -> Path:
    """The ``class_id.csv`` shipped with the package."""
    for path in CLASS_CSV_CANDIDATES:
        if path.is_file():
            return path
    raise ConversionError('class_id.csv not found in the package (looked for '
                          f'{", ".join(map(str, CLASS_CSV_CANDIDATES))}); pass --class-csv')


def read_class_csv(path: Path) -> Dict[str, int]:
    """Map image id -> class folder (1..3) from a csv with ``ID,Class`` columns."""
    if not Path(path).is_file():
        raise ConversionError(f'class csv not found: {path}')
    classes: Dict[str, int] = {}
    with open(path, encoding='utf-8-sig', newline='') as f:
        for line_no, row in enumerate(csv.reader(f, skipinitialspace=True), 1):
            if not row or row[0].strip() in ('', 'ID'):
                continue
            if len(row) < 2 or row[1].strip() not in CLASSES:
                raise ConversionError(f'{path}:{line_no}: expected "<id>,<{"|".join(CLASSES)}>", got {row}')
            image_id = row[0].strip()
            if image_id in classes:
                raise ConversionError(f'{path}:{line_no}: {image_id} listed twice')
            classes[image_id] = CLASSES[row[1].strip()]
    if not classes:
        raise ConversionError(f'{path} lists no image')
    return classes


def locate_source(src_root: Path) -> Path:
    """The folder holding the Input and GroundTruth folders (``src_root`` or ``src_root/ISIC``)."""
    for cand in (src_root, src_root / BASE_DIR):
        if (cand / IMAGE_DIR).is_dir():
            return cand
    raise ConversionError(f'{src_root / IMAGE_DIR} not found: SRC_ROOT must hold the extracted '
                          f'{IMAGE_DIR}/ and {MASK_DIR}/ folders')


@dataclass
class Summary:
    """What :func:`prepare_isic` did."""
    out_dir: Path
    class_counts: Dict[int, int] = field(default_factory=dict)
    masks_placed: int = 0  # 0 when the masks were already in place


def find_missing(src: Path, classes: Dict[str, int]) -> List[Path]:
    """Images and masks listed in the csv but absent from ``src``."""
    missing = []
    for image_id in classes:
        for path in (src / IMAGE_DIR / f'{image_id}.jpg', src / MASK_DIR / mask_name(image_id)):
            if not path.is_file():
                missing.append(path)
    return missing


def find_strays(out_input: Path, classes: Dict[str, int]) -> List[Path]:
    """Images in the output class folders that the csv puts in another class (or none)."""
    strays = []
    for cls in sorted(set(classes.values())):
        folder = out_input / str(cls)
        if folder.is_dir():
            strays += [p for p in sorted(folder.glob('*.jpg')) if classes.get(p.stem) != cls]
    return strays


def prepare_isic(src_root, data_root=None, class_csv=None, link: bool = False,
                 overwrite: bool = False) -> Summary:
    """Build the ISIC class folders.

    Args:
        src_root: folder with the extracted ``ISIC2018_Task1-2_Training_Input`` and
            ``ISIC2018_Task1_Training_GroundTruth`` (or its parent holding ``ISIC/``).
        data_root: the configs' ``data_root``; the result goes to ``data_root/ISIC``.
            ``None`` works in place, in ``src_root``.
        class_csv: the ``ID,Class`` csv; defaults to the copy shipped in the package.
        link: symlink instead of copying.
        overwrite: empty the class folders first (otherwise foreign images there are an error).
    """
    src = locate_source(Path(src_root))
    classes = read_class_csv(Path(class_csv) if class_csv else default_class_csv())
    missing = find_missing(src, classes)
    if missing:
        raise ConversionError(f'{len(missing)} listed image(s)/mask(s) missing:\n{list_names(missing)}')
    out = Path(data_root) / BASE_DIR if data_root is not None else src
    in_place = out.resolve() == src.resolve()
    out_input = out / IMAGE_DIR
    if overwrite:
        for cls in CLASSES.values():
            shutil.rmtree(out_input / str(cls), ignore_errors=True)
    strays = find_strays(out_input, classes)
    if strays:
        raise ConversionError(f'{len(strays)} image(s) in the class folders do not belong there by the csv '
                              f'(pass --overwrite to empty the class folders):\n{list_names(strays)}')
    summary = Summary(out)
    for cls in CLASSES.values():
        (out_input / str(cls)).mkdir(parents=True, exist_ok=True)
        summary.class_counts[cls] = 0
    for image_id, cls in sorted(classes.items()):
        place_file(src / IMAGE_DIR / f'{image_id}.jpg', out_input / str(cls) / f'{image_id}.jpg', link)
        summary.class_counts[cls] += 1
    if not in_place:
        (out / MASK_DIR).mkdir(parents=True, exist_ok=True)
        for image_id in sorted(classes):
            place_file(src / MASK_DIR / mask_name(image_id), out / MASK_DIR / mask_name(image_id), link)
            summary.masks_placed += 1
    return summary


def format_summary(summary: Summary) -> str:
    """Per-class counts, and a note when they differ from the full training set's."""
    names = {v: k for k, v in CLASSES.items()}
    rows = [(c, names[c], n) for c, n in sorted(summary.class_counts.items())]
    lines = [f'ISIC: {sum(summary.class_counts.values())} images sorted into '
             f'{summary.out_dir / IMAGE_DIR}/{{1,2,3}}', format_table(rows)]
    if summary.class_counts != EXPECTED_COUNTS:
        lines.append('note: the full ISIC 2018 Task 1 training set gives '
                     + ' / '.join(str(n) for n in EXPECTED_COUNTS.values()))
    if summary.masks_placed:
        lines.append(f'{summary.masks_placed} masks placed in {summary.out_dir / MASK_DIR}')
    else:
        lines.append(f'masks left in place in {summary.out_dir / MASK_DIR}')
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='tools/dataset_converters/isic.py',
        description='Sort ISIC 2018 Task 1 training images into the class folders 1/2/3 of IFA.')
    parser.add_argument('src_root', type=Path,
                        help=f'folder holding {IMAGE_DIR}/ and {MASK_DIR}/ as extracted')
    parser.add_argument('data_root', type=Path, nargs='?',
                        help=f'dataset root; output goes to DATA_ROOT/{BASE_DIR} (default: in place, in SRC_ROOT)')
    parser.add_argument('--class-csv', type=Path, help='ID,Class csv (default: the copy shipped in the package)')
    parser.add_argument('--link', action='store_true', help='make relative symlinks instead of copies')
    parser.add_argument('--overwrite', action='store_true', help='empty the class folders first')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = prepare_isic(args.src_root, args.data_root, args.class_csv, args.link, args.overwrite)
    except ConversionError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0
