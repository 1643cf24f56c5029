"""Small helpers shared by the dataset preparation tools."""
import os
import shutil
from pathlib import Path
from typing import Iterable, Sequence


def list_names(paths: Iterable, limit: int = 10) -> str:
    """Format up to ``limit`` paths, one per indented line, plus a count of the rest."""
    paths = [str(p) for p in paths]
    lines = [f'  {p}' for p in paths[:limit]]
    if len(paths) > limit:
        lines.append(f'  ... and {len(paths) - limit} more')
    return '\n'.join(lines)


def place_file(src: Path, dst: Path, link: bool = False) -> None:
    """Copy ``src`` to ``dst`` (replacing ``dst``), or make ``dst`` a relative symlink to it."""
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    if link:
        dst.symlink_to(os.path.relpath(src.resolve(), dst.parent.resolve()))
    else:
        shutil.copyfile(src, dst)


def format_table(rows: Sequence[Sequence[object]]) -> str:
    """Left-align the first columns and right-align the last one of a small table."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths[:-1])]
        cells.append(str(row[-1]).rjust(widths[-1]))
        out.append('  ' + '  '.join(cells))
    return '\n'.join(out)
