"""Shipped configs found by name: in a wheel's ``ifa_mmseg/.mim/configs`` or a checkout's ``configs/``."""
import difflib
import glob
import os.path as osp
from typing import List

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))
SCOPE = 'ifa_mmseg'  # mmengine's package scope of the shipped configs: 'ifa_mmseg::ifa/deepglobe_1shot.py'


def config_roots() -> List[str]:
    """Where the shipped configs are: a wheel's ``ifa_mmseg/.mim/configs``, else the checkout's ``configs/``."""
    roots = [osp.join(_PACKAGE, '.mim', 'configs'), osp.join(osp.dirname(_PACKAGE), 'configs')]
    return [r for r in roots if osp.isdir(r)]


def _shipped_names(roots: List[str]) -> List[str]:
    """Every shipped config as a path under its root, ``'ifa/deepglobe_1shot.py'``."""
    found = {osp.relpath(p, root).replace(osp.sep, '/')
             for root in roots for p in glob.glob(osp.join(root, '**', '*.py'), recursive=True)}
    return sorted(found)


def _closest(rel: str, names: List[str]) -> List[str]:
    """The shipped names most like ``rel``: by path, or by file name when ``rel`` is a bare file name."""
    if '/' in rel:
        return difflib.get_close_matches(rel, names, n=3)
    close = difflib.get_close_matches(rel, sorted({osp.basename(n) for n in names}), n=3)
    return [n for c in close for n in names if osp.basename(n) == c]


def get_config_path(name: str) -> str:
    """The absolute path of a shipped config, found by name.

    Args:
        name: a path under ``configs/`` (``'ifa/deepglobe_1shot.py'``), the same with mmengine's package
            scope (``'ifa_mmseg::ifa/deepglobe_1shot.py'``), or a config's file name when it is unique
            (``'deepglobe_1shot.py'`` or ``'deepglobe_1shot'``, as ``mim train ifa_mmseg NAME`` finds it).

    Raises:
        FileNotFoundError: no shipped config has that name (the message lists the closest names), or a
            bare file name matches several.
    """
    rel = name.split('::', 1)[1] if name.startswith(SCOPE + '::') else name
    rel = rel if rel.endswith('.py') else rel + '.py'
    roots = config_roots()
    for root in roots:
        path = osp.join(root, rel)
        if osp.isfile(path):
            return path
    if not any(sep in rel for sep in '/\\'):
        for root in roots:
            found = sorted(glob.glob(osp.join(root, '**', rel), recursive=True))
            if len(found) > 1:
                raise FileNotFoundError(f'config name {name!r} is ambiguous: {found}')
            if found:
                return found[0]
    closest = _closest(rel, _shipped_names(roots))
    hint = f'the closest are {closest}' if closest else 'no shipped name is close'
    raise FileNotFoundError(f'no shipped ifa_mmseg config named {name!r}; {hint} (looked in {roots})')
