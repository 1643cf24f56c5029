"""ifa-mmseg: IFA cross-domain few-shot segmentation for MMSegmentation 1.x.

Importing the package installs the compatibility layer (mmcv-lite shim, safe
checkpoint loading, ``ifa_mmseg::`` config names) before any mmseg submodule, then
registers every component.
"""
from . import compat

HAS_MMCV_OPS = compat.install()

from . import engine, evaluation, models, structures, utils, visualization  # noqa: E402,F401
from . import datasets  # noqa: E402,F401
from .utils.config_path import config_roots, get_config_path  # noqa: E402,F401

__version__ = '0.1.0'
