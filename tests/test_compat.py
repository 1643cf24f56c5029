"""Safe checkpoint loading and the mmcv-lite shim."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from ifa_mmseg.compat import safe_torch_load


class Exploit:
    """Unpickling this runs code (it would create a file)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}', ))


def test_malicious_pickle_is_refused(tmp_path):
    flag = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'payload': Exploit(flag)}, path)
    for load in (lambda: CheckpointLoader.load_checkpoint(path, map_location='cpu'),
                 lambda: load_checkpoint(torch.nn.Linear(1, 1), path),
                 lambda: safe_torch_load(path)):
        with pytest.raises(pickle.UnpicklingError):
            load()
    assert not flag.exists()


def test_getattr_is_restricted(tmp_path):
    """Only HistoryBuffer's statistics may be looked up with getattr."""

    class Sneaky:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    path = str(tmp_path / 'getattr.pth')
    torch.save({'x': Sneaky()}, path)
    with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer statistics'):
        safe_torch_load(path)


def test_mmengine_checkpoint_objects_load(tmp_path):
    hub = MessageHub.get_instance('compat_test')
    hub.update_scalar('train/loss', 0.25)
    hub.update_info('iter', 3)
    buf = HistoryBuffer()
    buf.update(np.float64(2.0))
    path = str(tmp_path / 'runner.pth')
    torch.save({'message_hub': hub.state_dict(), 'meta': {'seed': np.int64(4), 'a': np.zeros(2, np.float32)},
                'buf': buf, 'state_dict': {'w': torch.ones(2)}}, path)
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert ckpt['buf'].mean() == 2.0 and ckpt['meta']['seed'] == 4
    assert ckpt['message_hub']['log_scalars']['train/loss'].current() == 0.25


SHIM_CHECK = '''
import sys, types
fake = types.ModuleType('mmcv.ops')  # stands in for a compiled mmcv.ops


def op(name):  # every op name resolves, as in a compiled build
    if name.startswith('__'):
        raise AttributeError(name)
    return type(name, (), {})


fake.__getattr__ = op
sys.modules['mmcv.ops'] = fake
import ifa_mmseg
assert ifa_mmseg.HAS_MMCV_OPS and sys.modules['mmcv.ops'] is fake
print('ok')
'''


def test_shim_unused_when_ops_exist(root):
    """With a compiled mmcv.ops importable, the stub is never installed."""
    proc = subprocess.run([sys.executable, '-W', 'ignore', '-c', SHIM_CHECK], cwd=root, capture_output=True,
                          text=True)
    assert proc.stdout.strip() == 'ok', proc.stderr


def test_mmseg_importable():
    import mmseg.apis  # noqa: F401
    import mmseg.datasets  # noqa: F401
    import mmseg.models  # noqa: F401
    from mmseg.registry import MODELS
    for name in ('IFAResNet', 'IFAHead', 'IFASegmentor', 'FewShotSegDataPreProcessor'):
        assert MODELS.get(name) is not None, name


def _python(root, *args, cwd=None):
    """This interpreter with warnings shown (``-W default``), the checkout first on the path."""
    env = dict(os.environ, PYTHONPATH=root)
    env.pop('PYTHONWARNINGS', None)
    return subprocess.run([sys.executable, '-W', 'default', *args], cwd=cwd or root, env=env, capture_output=True,
                          text=True, timeout=600)


def test_import_prints_nothing(root, tmp_path):
    proc = _python(root, '-c', 'import ifa_mmseg', cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '' and proc.stderr == ''


def test_tool_help_prints_no_warning(root):
    proc = _python(root, 'tools/train.py', '--help')
    assert proc.returncode == 0, proc.stderr
    assert 'Warning' not in proc.stdout + proc.stderr, proc.stderr
    assert proc.stderr == ''


def test_tool_run_logs_the_mmcv_ops_once(root, tmp_path):
    proc = _python(root, 'tools/train.py', 'tests/helpers/toy_config.py', '--work-dir', str(tmp_path), '--cfg-options',
                   'train_cfg.max_iters=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    lines = [line for line in log.splitlines() if 'mmcv ops:' in line]
    assert len(lines) == 1, lines
    expected = 'compiled' if ifa_mmseg_has_ops() else 'ifa_mmseg stub'
    assert expected in lines[0] and ' - INFO - ' in lines[0], lines[0]
    assert 'MultiScaleDeformableAttention' not in log


def ifa_mmseg_has_ops():
    import ifa_mmseg
    return ifa_mmseg.HAS_MMCV_OPS


BROKEN_BUILD = '''
import importlib.abc, importlib.machinery, sys


class BrokenExt(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A compiled mmcv._ext that exists but does not load (e.g. built for another torch)."""

    def find_spec(self, name, path=None, target=None):
        if name == 'mmcv._ext':
            return importlib.machinery.ModuleSpec(name, self, origin='/fake/mmcv/_ext.so')

    def create_module(self, spec):
        raise ImportError('libc10_cuda.so: cannot open shared object file')

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, BrokenExt())
try:
    import ifa_mmseg
except ImportError as err:
    print('ImportError:', err)
else:
    print('imported, stub installed:', not ifa_mmseg.HAS_MMCV_OPS)
'''


def test_broken_compiled_mmcv_is_an_error(root):
    """A compiled mmcv whose ops fail to load is reported, not silently replaced by the stub."""
    proc = _python(root, '-c', BROKEN_BUILD)
    out = proc.stdout.strip()
    assert out.startswith('ImportError:'), out + proc.stderr[-2000:]
    assert '/fake/mmcv/_ext.so' in out and 'libc10_cuda.so: cannot open shared object file' in out
