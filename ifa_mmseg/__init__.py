"""ifa-mmseg: IFA cross-domain few-shot segmentation for MMSegmentation 1.x.

Importing the package installs the compatibility layer (mmcv-lite shim, safe
checkpoint loading) before any mmseg submodule, then registers every component.
"""
from . import compat

HAS_MMCV_OPS = compat.install()

from mmengine.config.utils import MODULE2PACKAGE as _MODULE2PACKAGE  # noqa: E402

from . import engine, evaluation, models, utils, visualization  # noqa: E402,F401
from . import datasets  # noqa: E402,F401
from .utils.config_path import config_roots, get_config_path  # noqa: E402,F401

# mmengine resolves `ifa_mmseg::ifa/x.py` (a `_base_`, or mmengine.hub.get_config) through this map to
# the installed distribution's ifa_mmseg/.mim/configs (a wheel; see setup.py), once this package is imported.
_MODULE2PACKAGE.setdefault('ifa_mmseg', 'ifa-mmseg')

__version__ = '0.1.0'
