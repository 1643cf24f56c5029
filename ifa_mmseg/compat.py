"""Compatibility with the tested stack (see docs/en/get_started.md, "Environment notes").

Three pieces, installed by ``import ifa_mmseg`` before any mmseg submodule:

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
* ``install_config_scope``: mmengine 0.10.x finds a package-scoped config name
  (``_base_ = 'ifa_mmseg::ifa/x.py'``, ``mmengine.hub.get_config``) in
  ``<distribution location>/ifa_mmseg/.mim``, which only a wheel has (setup.py); an
  editable install (``pip install -e .``, the README's setup) has no ``ifa_mmseg``
  folder there. The ``ifa_mmseg`` scope is resolved by ``get_config_path`` instead:
  the same file in a wheel, the checkout's ``configs/`` in an editable install.

It works on both tested stacks (``requirements.txt`` and the oldest,
``requirements-min.txt``: torch 2.4, numpy 1.26). ``import ifa_mmseg`` prints
nothing; the first Runner's log states once which mmcv ops are in use
(:func:`mmcv_ops_message`). A compiled mmcv whose ``mmcv.ops`` fails to import
raises that error instead of falling back to the stub.
"""
import _codecs
import ast
import builtins
import contextlib
import functools
import importlib
import importlib.util
import os
import os.path as osp
import pickle
import re
import sys
import types
import warnings
from typing import Any, Callable, FrozenSet, Iterator, List, Optional, Tuple

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

    Raises:
        ImportError: mmcv has compiled ops (``mmcv._ext``) but ``mmcv.ops`` does not
            import (e.g. built for another torch or CUDA); the stub would hide that.
    """
    global _OPS_STATE
    try:
        import mmcv.ops  # noqa: F401
        _OPS_STATE = 'compiled'
        return True
    except Exception as err:  # an extension that fails to load may raise OSError etc.
        ext = _compiled_ext_origin()
        if ext is not None:
            raise ImportError(
                f'mmcv has compiled ops ({ext}) but `import mmcv.ops` fails: {type(err).__name__}: {err}. '
                'Rebuild or reinstall mmcv for this torch/CUDA, or install mmcv-lite instead; '
                'ifa_mmseg does not fall back to its pure-python stub over a broken mmcv build.') from err
        if not isinstance(err, ImportError):
            raise
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
    _OPS_STATE = 'stub'
    _import_mmcv_transformer_quietly()
    return False


# 'compiled' or 'stub' once install_mmcv_ops_shim ran
_OPS_STATE: Optional[str] = None
_OPS_LOGGED = False
# mmcv-lite's known warning when mmseg imports mmcv.cnn.bricks.transformer (its deformable attention needs ops)
_MSDA_WARNING = 'Fail to import ``MultiScaleDeformableAttention``'


def _compiled_ext_origin() -> Optional[str]:
    """Where mmcv's compiled extension ``mmcv._ext`` is, or None (mmcv-lite)."""
    try:
        spec = importlib.util.find_spec('mmcv._ext')
    except (ImportError, ValueError):
        return None
    return None if spec is None else (spec.origin or 'mmcv._ext')


def _import_mmcv_transformer_quietly() -> None:
    """Import the module that warns about mmcv-lite once, without that one known warning.

    The shim knows mmcv-lite is in use, and the ops line of the first Runner log says so.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message=re.escape(_MSDA_WARNING), category=UserWarning)
        try:
            importlib.import_module('mmcv.cnn.bricks.transformer')
        except ImportError:  # an mmcv without this module: nothing to silence
            pass


def mmcv_ops_message() -> str:
    """One line: which mmcv ops this process uses."""
    import mmcv
    version = getattr(mmcv, '__version__', '?')
    if _OPS_STATE == 'compiled':
        return f'mmcv ops: compiled (mmcv {version}, {_compiled_ext_origin() or "mmcv.ops"})'
    if _OPS_STATE == 'stub':
        return (f'mmcv ops: ifa_mmseg stub (mmcv {version} without compiled ops, e.g. mmcv-lite): pure-PyTorch '
                'point_sample only; compiled-only ops raise ModuleNotFoundError')
    return 'mmcv ops: not resolved (ifa_mmseg.compat.install() has not run)'


def install_ops_log() -> None:
    """Log :func:`mmcv_ops_message` once per process, to the first Runner's logger (INFO).

    Nothing is printed at import; every Runner (ours and mmengine's) builds its logger
    through ``Runner.build_logger``.
    """
    from mmengine.runner import Runner
    if getattr(Runner.build_logger, '_ifa_ops_log', False):
        return
    original = Runner.build_logger

    @functools.wraps(original)
    def build_logger(self: Any, *args: Any, **kwargs: Any) -> Any:
        global _OPS_LOGGED
        logger = original(self, *args, **kwargs)
        if not _OPS_LOGGED:
            _OPS_LOGGED = True
            logger.info(mmcv_ops_message())
        return logger

    build_logger._ifa_ops_log = True  # type: ignore[attr-defined]
    Runner.build_logger = build_logger


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


def _numpy_dtype_classes() -> List[type]:
    """numpy's dtype classes (``np.dtypes`` from numpy 1.25; the same classes via ``type()`` before)."""
    if hasattr(np, 'dtypes'):
        return [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    return sorted({type(np.dtype(c)) for c in np.typecodes['All']}, key=str)


def _numpy_multiarray() -> types.ModuleType:
    """``numpy._core.multiarray`` (numpy 2) or ``numpy.core.multiarray`` (numpy 1), without the alias warning."""
    try:
        return importlib.import_module('numpy._core.multiarray')
    except ImportError:
        return importlib.import_module('numpy.core.multiarray')


# torch 2.4 allow-lists a function by its ``__module__.__name__`` only (no (obj, name) pairs):
# this restricted getattr is allow-listed under the name a pickle uses, builtins.getattr.
def _restricted_getattr(obj: Any, name: str) -> Callable:
    return _history_buffer_getattr(obj, name)


_restricted_getattr.__module__ = 'builtins'
_restricted_getattr.__name__ = _restricted_getattr.__qualname__ = 'getattr'


def checkpoint_safe_globals() -> List[Any]:
    """The non-tensor objects an mmengine checkpoint may contain."""
    from mmengine.logging import HistoryBuffer
    from mmengine.config import ConfigDict
    multiarray = _numpy_multiarray()
    # _codecs.encode rebuilds the bytes of numpy scalars; torch >= 2.5 allows it by default, 2.4 does not
    return [HistoryBuffer, ConfigDict, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
            *_numpy_dtype_classes(), _restricted_getattr, _codecs.encode]


@contextlib.contextmanager
def _safe_globals(safe: List[Any]) -> Iterator[None]:
    """``torch.serialization.safe_globals`` (torch >= 2.5), or its equivalent on torch 2.4."""
    serialization = torch.serialization
    if hasattr(serialization, 'safe_globals'):
        with serialization.safe_globals(safe):
            yield
        return
    if not hasattr(serialization, 'add_safe_globals'):
        raise RuntimeError(f'torch {torch.__version__} cannot allow-list checkpoint objects; ifa_mmseg needs '
                           'torch >= 2.4 (torch.serialization.add_safe_globals)')
    before = list(serialization.get_safe_globals())
    serialization.add_safe_globals(safe)
    try:
        yield
    finally:
        serialization.clear_safe_globals()
        serialization.add_safe_globals(before)


def safe_torch_load(filename: str, map_location: Any = 'cpu') -> Any:
    """``torch.load`` with ``weights_only=True`` plus mmengine's checkpoint objects."""
    with _safe_globals(checkpoint_safe_globals()):
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


def install_config_scope() -> None:
    """Resolve ``ifa_mmseg::<path>`` in ``_base_`` and ``mmengine.hub.get_config`` with ``get_config_path``.

    Names of other scopes go to mmengine unchanged. A base config found this way gets mmengine's scope
    ``ifa_mmseg`` as before (``ifa_mmseg.registry``). An unknown name raises ``FileNotFoundError`` naming
    it, the config that asked for it and the closest shipped names. ``mmengine.hub.get_config`` is
    replaced by name: a reference taken before ``import ifa_mmseg`` keeps mmengine's lookup.
    """
    import mmengine.hub
    from mmengine.config import Config
    from mmengine.config.utils import MODULE2PACKAGE
    from mmengine.hub import hub

    # the distribution mmengine's registry names when ``ifa_mmseg.registry`` cannot be imported
    MODULE2PACKAGE.setdefault('ifa_mmseg', 'ifa-mmseg')
    if getattr(hub.get_config, '_ifa_scope', False):
        return
    mmengine_cfg_path, mmengine_get_config = Config._get_cfg_path, hub.get_config

    # config_path is imported at call time: ifa_mmseg is still importing when install() runs
    def _get_cfg_path(cfg_path: str, filename: str) -> Tuple[str, Optional[str]]:
        from .utils.config_path import SCOPE, get_config_path
        if cfg_path.partition('::')[0] != SCOPE:
            return mmengine_cfg_path(cfg_path, filename)
        try:
            return get_config_path(cfg_path), SCOPE
        except FileNotFoundError as err:
            raise FileNotFoundError(f'{filename}: _base_: {err}') from None

    @functools.wraps(mmengine_get_config)
    def get_config(cfg_path: str, pretrained: bool = False) -> Config:
        from .utils.config_path import SCOPE, get_config_path
        if cfg_path.partition('::')[0] != SCOPE:
            return mmengine_get_config(cfg_path, pretrained)
        if pretrained:
            raise ValueError(f'get_config({cfg_path!r}, pretrained=True): ifa_mmseg publishes no weights')
        return Config.fromfile(get_config_path(cfg_path))

    get_config._ifa_scope = True  # type: ignore[attr-defined]
    Config._get_cfg_path = staticmethod(_get_cfg_path)
    hub.get_config = mmengine.hub.get_config = get_config  # hub.get_model looks it up in hub


def install() -> bool:
    """Install every piece; returns whether compiled mmcv ops are available."""
    has_ops = install_mmcv_ops_shim()
    install_safe_checkpoint_loader()
    install_config_scope()
    install_ops_log()
    os.environ.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)  # never silently unsafe
    return has_ops
