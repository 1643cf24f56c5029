"""Check (and with ``fix=True`` repair) the Chest X-ray layout read by the official ``DatasetLung`` (``data/lung.py``).

Expected::

    DATA_ROOT/LungSegmentation/CXR_png/<stem>.png        images
    DATA_ROOT/LungSegmentation/masks/<stem>_mask.png     masks

The loader lists the *masks* and derives each image name by replacing the
``_mask.png`` ending with ``.png``, so every mask must carry the suffix and have
its image. Two known deviations are repaired by ``fix``:

* the Kaggle "chest-xray-masks-and-labels" folder is called ``Lung Segmentation``
  (with a space): it is renamed to ``LungSegmentation``;
* the Montgomery (``MCUCXR_*``) masks of some distributions have the image's own
  name, without ``_mask``: they are renamed to ``<stem>_mask.png``.

Masks that are not PNG (by the loader's ``name.split('.')[1]`` test) are not
read by the loader and are ignored. Other problems (a mask whose image is
missing, an unsuffixed mask with no same-named image, a rename that would
overwrite a file) are reported and never fixed automatically. Images without a
mask are only counted: the loader does not use them. A mask whose size differs
from its image's is reported as a warning (the official loader resizes both to
400x400 independently and does not notice).
"""
import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from PIL import Image

from ...utils.errors import ConversionError
from ..chestxray import BASE_DIR, IMAGE_DIR, MASK_DIR, MASK_SUFFIX
from .common import list_names

KAGGLE_BASE_DIR = 'Lung Segmentation'


def is_loader_png(name: str) -> bool:
    """Whether the official loader's extension test (``name.split('.')[1] == 'png'``) keeps a file."""
    parts = name.split('.')
    return len(parts) > 1 and parts[1] == 'png'


def image_name_for_mask(mask_name: str) -> str:
    """The image the loader pairs with ``<stem>_mask.png``: ``<stem>.png``."""
    return mask_name[:-len(MASK_SUFFIX)] + '.png'


def suffixed_mask_name(image_name: str) -> str:
    """``<stem>.png`` -> ``<stem>_mask.png``."""
    return Path(image_name).stem + MASK_SUFFIX


@dataclass
class Report:
    """Outcome of a layout check."""
    base: Path
    images: int = 0
    masks: int = 0
    renamed_base: Optional[Tuple[Path, Path]] = None  # done with fix
    base_to_rename: Optional[Tuple[Path, Path]] = None  # needs fix
    unsuffixed: List[Tuple[Path, Path]] = field(default_factory=list)  # Montgomery-style, (old, new)
    renamed: List[Tuple[Path, Path]] = field(default_factory=list)
    orphans: List[Path] = field(default_factory=list)  # <stem>_mask.png without <stem>.png
    unknown: List[Path] = field(default_factory=list)  # no suffix and no same-named image
    conflicts: List[Tuple[Path, Path]] = field(default_factory=list)  # rename target exists
    size_mismatches: List[str] = field(default_factory=list)
    unmasked_images: int = 0

    @property
    def ok(self) -> bool:
        """True when the loader can use every mask as it is now on disk."""
        return not (self.base_to_rename or self.unsuffixed or self.orphans or self.unknown
                    or self.conflicts)


def locate_base(data_root: Path, fix: bool) -> Tuple[Path, Optional[Tuple[Path, Path]], bool]:
    """Find ``LungSegmentation`` (renaming ``Lung Segmentation`` when ``fix``).

    Returns ``(base, rename, done)``: the folder to check, the needed or done
    rename, and whether it was done.
    """
    target, kaggle = data_root / BASE_DIR, data_root / KAGGLE_BASE_DIR
    if not data_root.is_dir():
        raise ConversionError(f'data root not found: {data_root}')
    if target.is_dir() and kaggle.is_dir():
        raise ConversionError(f'both {target} and {kaggle} exist: keep one')
    if target.is_dir():
        return target, None, False
    if kaggle.is_dir():
        if fix:
            kaggle.rename(target)
            return target, (kaggle, target), True
        return kaggle, (kaggle, target), False
    raise ConversionError(f'{target} not found (nor the Kaggle name "{KAGGLE_BASE_DIR}")')


def _size(path: Path) -> Optional[Tuple[int, int]]:
    try:
        with Image.open(path) as im:
            return im.size
    except OSError:
        return None


def check_chestxray(data_root, fix: bool = False, check_sizes: bool = True) -> Report:
    """Check the Chest X-ray layout under ``data_root``; with ``fix`` apply the safe renames.

    Raises:
        ConversionError: the base, image or mask folder is missing or holds no PNG.
    """
    base, rename, done = locate_base(Path(data_root), fix)
    report = Report(base)
    if done:
        report.renamed_base = rename
    else:
        report.base_to_rename = rename
    image_dir, mask_dir = base / IMAGE_DIR, base / MASK_DIR
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise ConversionError(f'folder not found: {folder}')
    images = {p.name for p in image_dir.iterdir() if p.is_file() and is_loader_png(p.name)}
    masks = sorted(p.name for p in mask_dir.iterdir() if p.is_file() and is_loader_png(p.name))
    if not images or not masks:
        raise ConversionError(f'no PNG file in {image_dir if not images else mask_dir}')
    report.images = len(images)
    masked_images = set()
    for name in masks:
        mask = mask_dir / name
        if name.endswith(MASK_SUFFIX):
            image_name = image_name_for_mask(name)
            if image_name not in images:
                report.orphans.append(mask)
                continue
        elif name in images:  # Montgomery style: the mask has the image's name
            image_name = name
            new = mask_dir / suffixed_mask_name(name)
            if new.exists():
                report.conflicts.append((mask, new))
                continue
            if fix:
                mask.rename(new)
                report.renamed.append((mask, new))
                mask = new
            else:
                report.unsuffixed.append((mask, new))
        else:
            report.unknown.append(mask)
            continue
        masked_images.add(image_name)
        if check_sizes:
            image_size, mask_size = _size(image_dir / image_name), _size(mask)
            if image_size != mask_size:
                report.size_mismatches.append(
                    f'{mask} {mask_size} vs {image_dir / image_name} {image_size}')
    report.masks = len(masks)
    report.unmasked_images = len(images - masked_images)
    return report


def format_report(report: Report) -> str:
    """A readable account of the check: what was fixed, what is wrong, how to fix it."""
    lines = [f'Chest X-ray layout in {report.base}: {report.images} images, {report.masks} masks']
    if report.renamed_base:
        lines.append(f'renamed "{report.renamed_base[0]}" -> "{report.renamed_base[1]}"')
    if report.base_to_rename:
        lines.append(f'PROBLEM: the folder must be named {BASE_DIR}: rename "{report.base_to_rename[0]}" '
                     f'-> "{report.base_to_rename[1]}" (--fix does it)')
    if report.renamed:
        lines.append(f'renamed {len(report.renamed)} Montgomery-style mask(s) to <stem>{MASK_SUFFIX}:\n'
                     + list_names(f'{old.name} -> {new.name}' for old, new in report.renamed))
    if report.unsuffixed:
        lines.append(f'PROBLEM: {len(report.unsuffixed)} Montgomery-style mask(s) lack the {MASK_SUFFIX} '
                     f'suffix (--fix renames them):\n'
                     + list_names(f'{old.name} -> {new.name}' for old, new in report.unsuffixed))
    if report.orphans:
        lines.append(f'PROBLEM: {len(report.orphans)} mask(s) without their image <stem>.png in {IMAGE_DIR}/:\n'
                     + list_names(report.orphans))
    if report.unknown:
        lines.append(f'PROBLEM: {len(report.unknown)} mask(s) neither named <stem>{MASK_SUFFIX} nor named '
                     f'after an image:\n' + list_names(report.unknown))
    if report.conflicts:
        lines.append(f'PROBLEM: {len(report.conflicts)} unsuffixed mask(s) whose suffixed name already exists:\n'
                     + list_names(f'{old} (and {new.name})' for old, new in report.conflicts))
    if report.size_mismatches:
        lines.append(f'warning: {len(report.size_mismatches)} mask(s) differ in size from their image:\n'
                     + list_names(report.size_mismatches))
    if report.unmasked_images:
        lines.append(f'{report.unmasked_images} image(s) have no mask and are not used by the loader')
    lines.append(f'OK: every mask is <image stem>{MASK_SUFFIX} with its image' if report.ok else
                 'NOT OK: fix the problems above')
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='tools/dataset_converters/chestxray.py',
        description=f'Check the Chest X-ray layout DATA_ROOT/{BASE_DIR}/{{{IMAGE_DIR},{MASK_DIR}}} '
                    f'(mask = <image stem>{MASK_SUFFIX}); --fix applies the safe renames.')
    parser.add_argument('data_root', type=Path, help=f'dataset root holding {BASE_DIR}/')
    parser.add_argument('--fix', action='store_true',
                        help=f'rename "{KAGGLE_BASE_DIR}", and Montgomery-style masks to <stem>{MASK_SUFFIX}')
    parser.add_argument('--no-size-check', action='store_true', help='skip comparing mask and image sizes')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = check_chestxray(args.data_root, args.fix, not args.no_size_check)
    except ConversionError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(format_report(report))
    return 0 if report.ok else 1
