"""ifa-mmseg: IFA cross-domain few-shot segmentation for MMSegmentation 1.x.

Importing the package installs the compatibility layer (mmcv-lite shim, safe
checkpoint loading) before any mmseg submodule, then registers every component.
"""
from . import compat

HAS_MMCV_OPS = compat.install()

from . import engine, evaluation, models, utils, visualization  # noqa: E402,F401
from . import datasets  # noqa: E402,F401

__version__ = '0.1.0'

import glob as _glob  # noqa: E402
import os.path as _osp  # noqa: E402

from mmengine.config.utils import MODULE2PACKAGE as _MODULE2PACKAGE  # noqa: E402

# mmengine resolves `ifa_mmseg::ifa/x.py` (a `_base_`, or mmengine.hub.get_config) through this map to
# the installed distribution's ifa_mmseg/.mim/configs (a wheel; see setup.py), once this package is imported.
_MODULE2PACKAGE.setdefault('ifa_mmseg', 'ifa-mmseg')


def config_roots() -> list:
    """Where the shipped configs are: a wheel's ``ifa_mmseg/.mim/configs``, else the checkout's ``configs/``."""
    here = _osp.dirname(_osp.abspath(__file__))
    roots = [_osp.join(here, '.mim', 'configs'), _osp.join(_osp.dirname(here), 'configs')]
    return [r for r in roots if _osp.isdir(r)]


def get_config_path(name: str) -> str:
    """The absolute path of a shipped config, found by name.

    Args:
        name: a path under ``configs/`` (``'ifa/deepglobe_1shot.py'``), the same with mmengine's package
            scope (``'ifa_mmseg::ifa/deepglobe_1shot.py'``), or a config's file name when it is unique
            (``'deepglobe_1shot.py'`` or ``'deepglobe_1shot'``, as ``mim train ifa_mmseg NAME`` finds it).

    Raises:
        FileNotFoundError: no shipped config has that name, or a bare file name matches several.
    """
    rel = name.split('::', 1)[1] if name.startswith('ifa_mmseg::') else name
    rel = rel if rel.endswith('.py') else rel + '.py'
    roots = config_roots()
    for root in roots:
        path = _osp.join(root, rel)
        if _osp.isfile(path):
            return path
    if not any(sep in rel for sep in '/\\'):
        for root in roots:
            found = sorted(_glob.glob(_osp.join(root, '**', rel), recursive=True))
            if len(found) > 1:
                raise FileNotFoundError(f'config name {name!r} is ambiguous: {found}')
            if found:
                return found[0]
    raise FileNotFoundError(f'no shipped ifa_mmseg config named {name!r} (looked in {roots})')
