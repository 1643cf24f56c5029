"""Compatibility with the tested stack (see README, "Environment").

Two pieces, both installed by ``import ifa_mmseg`` before any mmseg submodule:

* ``install_mmcv_ops_shim``: mmseg 1.2.x imports ``mmcv.ops.point_sample``
  unconditionally (``mmseg/utils/mask_classification.py``); with mmcv-lite (no
  compiled ``mmcv._ext``) that breaks ``import mmseg.models``. ``point_sample`` is
  pure PyTorch, so a stub package exposes it. With a full mmcv the real
  ``mmcv.ops`` imports and nothing of the stub is used.
* ``install_safe_checkpoint_loader``: every local checkpoint goes through
  ``torch.load(weights_only=True)``. mmengine's own checkpoints (resume) pickle a
  few extra objects (``HistoryBuffer`` with numpy scalars and its statistics
  methods); exactly those are allow-listed, so a crafted pickle in a downloaded
  ``.pth`` cannot run code.
"""
import ast
import builtins
import importlib
import os
import os.path as osp
import pickle
import sys
import types
from typing import Any, Callable, FrozenSet, List

import numpy as np
import torch


def _compiled_op_names(ops_dir: str) -> FrozenSet[str]:
    """Names listed in ``mmcv/ops/__init__.py``'s ``__all__`` (the compiled ops)."""
    with open(osp.join(ops_dir, '__init__.py')) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == '__all__' for t in node.targets):
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


def install_mmcv_ops_shim() -> bool:
    """Make ``mmcv.ops`` importable without compiled ops.

    Returns:
        bool: True when the real compiled ``mmcv.ops`` is available (no shim).
    """
    try:
        import mmcv.ops  # noqa: F401
        return True
    except ImportError:
        pass
    for name in [n for n in sys.modules if n == 'mmcv.ops' or n.startswith('mmcv.ops.')]:
        del sys.modules[name]
    import mmcv
    ops_dir = osp.join(osp.dirname(mmcv.__file__), 'ops')
    compiled = _compiled_op_names(ops_dir)
    stub = types.ModuleType('mmcv.ops')
    stub.__path__ = [ops_dir]  # pure-python submodules import; __init__ is skipped
    stub.__doc__ = 'pure-python subset of mmcv.ops (mmcv-lite: no compiled mmcv._ext)'
    sys.modules['mmcv.ops'] = stub
    mmcv.ops = stub
    point_sample = importlib.import_module('mmcv.ops.point_sample')
    stub.point_sample = point_sample.point_sample
    stub.bilinear_grid_sample = point_sample.bilinear_grid_sample

    def sigmoid_focal_loss(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError('mmcv.ops.sigmoid_focal_loss needs mmcv built with compiled ops')

    stub.sigmoid_focal_loss = sigmoid_focal_loss

    def __getattr__(name: str) -> Any:
        # mmseg guards optional ops (CrissCrossAttention, PSAMask) with
        # `except ModuleNotFoundError`, so real op names must raise exactly that.
        if name in compiled:
            raise ModuleNotFoundError(
                f'mmcv.ops.{name} needs mmcv built with compiled ops (mmcv._ext)', name='mmcv._ext')
        raise AttributeError(f"module 'mmcv.ops' has no attribute {name!r}")

    stub.__getattr__ = __getattr__
    return False


# HistoryBuffer registers these lazily, on first instantiation.
_DEFAULT_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` inside checkpoints.

    mmengine pickles ``HistoryBuffer._statistics_methods`` as
    ``getattr(HistoryBuffer, 'mean')`` etc.; nothing else may be looked up.
    """
    from mmengine.logging import HistoryBuffer
    allowed = _DEFAULT_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return builtins.getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only HistoryBuffer statistics are allowed')


def checkpoint_safe_globals() -> List[Any]:
    """The non-tensor objects an mmengine checkpoint may contain."""
    from mmengine.logging import HistoryBuffer
    from mmengine.config import ConfigDict
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    return [HistoryBuffer, ConfigDict, np.ndarray, np.dtype, np.core.multiarray._reconstruct,
            np.core.multiarray.scalar, *dtypes, (_history_buffer_getattr, 'builtins.getattr')]


def safe_torch_load(filename: str, map_location: Any = 'cpu') -> Any:
    """``torch.load`` with ``weights_only=True`` plus mmengine's checkpoint objects."""
    with torch.serialization.safe_globals(checkpoint_safe_globals()):
        return torch.load(filename, map_location=map_location, weights_only=True)


def install_safe_checkpoint_loader() -> None:
    """Route mmengine's local-file checkpoint loading through :func:`safe_torch_load`."""
    from mmengine.runner.checkpoint import CheckpointLoader

    @CheckpointLoader.register_scheme(prefixes='', force=True)
    def load_from_local(filename: str, map_location: Any) -> Any:
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        return safe_torch_load(filename, map_location)


def install() -> bool:
    """Install both pieces; returns whether compiled mmcv ops are available."""
    has_ops = install_mmcv_ops_shim()
    install_safe_checkpoint_loader()
    os.environ.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)  # never silently unsafe
    return has_ops
