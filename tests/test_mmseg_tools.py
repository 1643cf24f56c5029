"""mmseg's own tools/train.py runs our configs unchanged (custom_imports), and resumes."""
import os
import subprocess
import sys

import mmseg
import torch

from ifa_mmseg.compat import safe_torch_load

MMSEG_TRAIN = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'tools', 'train.py')


def train(root, work_dir, *extra):
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run([sys.executable, '-W', 'ignore', MMSEG_TRAIN, 'tests/helpers/toy_config.py',
                           '--work-dir', str(work_dir), *extra], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)


def test_mmseg_train_and_resume(root, tmp_path):
    first = train(root, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    ckpt2 = safe_torch_load(str(tmp_path / 'iter_2.pth'))
    assert ckpt2['meta']['iter'] == 2 and 'message_hub' in ckpt2

    resumed = train(root, tmp_path, '--resume', '--cfg-options', 'train_cfg.max_iters=4')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert 'resumed' in log.lower() and 'iter_2.pth' in log
    ckpt4 = safe_torch_load(str(tmp_path / 'iter_4.pth'))
    assert ckpt4['meta']['iter'] == 4
    changed = [k for k in ckpt2['state_dict'] if not torch.equal(ckpt2['state_dict'][k], ckpt4['state_dict'][k])]
    assert changed and all(k.startswith(('backbone.layer2.', 'backbone.layer3.')) for k in changed)
