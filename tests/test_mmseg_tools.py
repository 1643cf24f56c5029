"""mmseg's own tools/train.py runs our configs unchanged (custom_imports), and resumes."""
import json
import os
import subprocess
import sys

import mmseg
import torch

from ifa_mmseg.compat import safe_torch_load

MMSEG_TOOLS = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'tools')


def mmseg_tool(root, tool, *args):
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run([sys.executable, '-W', 'ignore', os.path.join(MMSEG_TOOLS, tool), *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)


def train(root, work_dir, *extra):
    return mmseg_tool(root, 'train.py', 'tests/helpers/toy_config.py', '--work-dir', str(work_dir), *extra)


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


def test_mmseg_tools_honour_the_facts_or_stop(root, tmp_path):
    """mmseg's train.py/test.py build our FewShotRunner (runner_type): facts reach the run, contradictions stop."""
    first = train(root, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "protocol: data_root='data', shot=1" in first.stdout + first.stderr  # logged by FewShotRunner
    assert json.loads((tmp_path / 'protocol.json').read_text())['mode'] == 'train'
    ckpt = str(tmp_path / 'iter_2.pth')
    test = mmseg_tool(root, 'test.py', 'tests/helpers/toy_config.py', ckpt, '--work-dir', str(tmp_path / 't'),
                      '--cfg-options', 'test_seeds=[4]')
    assert test.returncode == 0, test.stderr[-3000:]
    assert 'episode seed 4 (1/1): 4 episodes' in test.stdout + test.stderr
    assert json.loads((tmp_path / 't' / 'protocol.json').read_text())['test_seeds'] == [4]
    refused = mmseg_tool(root, 'test.py', 'tests/helpers/toy_config.py', ckpt, '--work-dir', str(tmp_path / 'r'),
                         '--cfg-options', 'test_cfg.seeds=[0]')
    assert refused.returncode != 0
    assert 'test_cfg.seeds=[0] contradicts test_seeds=(0, 1, 2)' in refused.stderr
