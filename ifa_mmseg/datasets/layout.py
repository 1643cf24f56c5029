"""Reading the published on-disk layouts: shipped split lists, folder checks, file listings."""
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional

SPLITS_DIR = Path(__file__).resolve().parent / 'splits'


class LayoutError(FileNotFoundError):
    """The files under ``data_root`` do not follow the layout a dataset reads."""


def require_dir(path: str, hint: str) -> str:
    """Return ``path`` if it is a folder, else raise a :class:`LayoutError` naming it and ``hint``."""
    if not os.path.isdir(path):
        raise LayoutError(f'folder not found: {path}\n{hint}')
    return path


def has_ext(name: str, ext: str) -> bool:
    """The official loaders' extension test: the text after the first dot is ``ext``.

    ``'a.jpg'`` passes for ``'jpg'``; ``'a.b.jpg'`` does not (the official code keeps
    ``name.split('.')[1]``), and hidden files never do (``glob('*')`` skips them).
    """
    parts = name.split('.')
    return not name.startswith('.') and len(parts) > 1 and parts[1] == ext


def list_files(folder: str, ext: str) -> List[str]:
    """Names in ``folder`` that pass :func:`has_ext`, in Python string order (as ``sorted(glob)``)."""
    return sorted(n for n in os.listdir(folder) if has_ext(n, ext))


def read_lines(path: Path) -> List[str]:
    """Non-empty lines of a split list (LF or CRLF)."""
    return [line for line in path.read_text().splitlines() if line]


def missing_files(paths: List[str], folder: str) -> List[str]:
    """Those of ``paths`` (files inside ``folder``) that do not exist; one listing of ``folder``."""
    present = set(os.listdir(folder))
    return [p for p in paths if os.path.basename(p) not in present]


def first_missing_message(missing: List[str], what: str, hint: Optional[str] = None) -> str:
    """'N <what> missing, e.g. <first>' plus an optional hint line."""
    msg = f'{len(missing)} {what} missing, e.g. {missing[0]}'
    return f'{msg}\n{hint}' if hint else msg


def image_mask_pool(image_dir: str, mask_dir: str, mask_name: Callable[[str], str], what: str,
                    hint: Optional[str] = None) -> List[Dict[str, str]]:
    """Records of the ``.jpg`` images of ``image_dir`` (official order) with their masks.

    Raises:
        LayoutError: naming the first mask (``mask_dir/mask_name(image)``) that is missing.
    """
    pool = [dict(img_path=os.path.join(image_dir, name), seg_map_path=os.path.join(mask_dir, mask_name(name)))
            for name in list_files(image_dir, 'jpg')]
    missing = missing_files([p['seg_map_path'] for p in pool], mask_dir)
    if missing:
        raise LayoutError(first_missing_message(missing, what, hint))
    return pool
