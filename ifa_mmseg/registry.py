"""Registries of scope ``ifa_mmseg``: children of mmseg's, so configs inheriting ``ifa_mmseg::...`` build.

mmengine gives the dicts of a config inherited from ``ifa_mmseg::<path>`` the scope ``ifa_mmseg`` and
imports ``ifa_mmseg.registry`` to find registries of that scope. Every component of this package is
registered in mmseg's registries; a child registry looks up in its parent, so nothing is registered
twice.
"""
from mmengine.registry import Registry
from mmseg import registry as _mmseg

_NAMES = ('DATASETS', 'DATA_SAMPLERS', 'EVALUATOR', 'HOOKS', 'INFERENCERS', 'LOG_PROCESSORS', 'LOOPS', 'METRICS',
          'MODELS', 'MODEL_WRAPPERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
          'PARAM_SCHEDULERS', 'RUNNERS', 'RUNNER_CONSTRUCTORS', 'TASK_UTILS', 'TRANSFORMS', 'VISBACKENDS',
          'VISUALIZERS', 'WEIGHT_INITIALIZERS')
globals().update({name: Registry(getattr(_mmseg, name).name, parent=getattr(_mmseg, name), scope='ifa_mmseg',
                                   locations=['ifa_mmseg'])
                  for name in _NAMES})
__all__ = list(_NAMES)
