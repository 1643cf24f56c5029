"""mmseg's own tools/train.py and tools/test.py run our configs unchanged (custom_imports), as ours do."""
import json
import os
import pickle
import subprocess
import sys

import mmseg
import torch
from ifa_mmseg.compat import safe_torch_load
from ifa_mmseg.datasets import make_synthetic_benchmark
from ifa_mmseg.engine.protocol import PROTOCOL_CHOICES

from tests.helpers.models import save_random_demo_checkpoint

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


FIVE_SHOT = """
_base_ = '{root}/configs/demo/deepglobe.py'
custom_imports = dict(imports=['ifa_mmseg', 'tests.helpers.logits_dump'], allow_failed_imports=False)
data_root = '{data}'
shot = 5
metrics = ('standard', 'official')
test_episodes = 4
test_seeds = (1, )
adaptation_labels = '{labels}'
episode_adaptation = dict(steps=1, optimizer=dict(lr=0.05))
test_dataloader = dict(batch_size=2, dataset=dict(pipeline=[
    dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=(48, 48))]))
test_evaluator = [dict(type='FewShotIoUMetric'), dict(type='EpisodeLogitsDump', out_file='{out}')]
"""


def test_mmseg_test_tool_equals_ours_for_every_label_setting(root, tmp_path):
    """mmseg's own tools/test.py builds a plain Runner from the unresolved config; whatever adaptation_labels says,
    at shot 5 it evaluates what our tools/test.py evaluates: the same protocol record, the same logits."""
    data = str(tmp_path / 'data')
    make_synthetic_benchmark(data, seed=5, size=48, images_per_class=2, num_tiles=24)
    ckpt = save_random_demo_checkpoint(root, str(tmp_path / 'random.pth'))
    for labels in PROTOCOL_CHOICES['adaptation_labels']:
        runs = {}
        for name, tool in (('ours', os.path.join(root, 'tools', 'test.py')), ('mmseg', os.path.join(MMSEG_TOOLS,
                                                                                                     'test.py'))):
            work_dir, out = tmp_path / labels / name, str(tmp_path / labels / f'{name}.pkl')
            config = tmp_path / labels / f'{name}.py'
            os.makedirs(work_dir)
            config.write_text(FIVE_SHOT.format(root=root, data=data, labels=labels, out=out))
            proc = subprocess.run([sys.executable, '-W', 'ignore', tool, str(config), ckpt, '--work-dir',
                                   str(work_dir)], cwd=root, env=dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS='1'),
                                  capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, (labels, name, proc.stderr[-3000:])
            with open(out, 'rb') as f:
                runs[name] = (json.loads((work_dir / 'protocol.json').read_text()), pickle.load(f))
        (record, logits), (mmseg_record, mmseg_logits) = runs['ours'], runs['mmseg']
        assert record == mmseg_record and record['adaptation_labels'] == labels and record['shot'] == 5
        assert ('episode_adaptation' in record) == (labels == 'episode')
        assert sorted(logits) == sorted(mmseg_logits) == [(1, i) for i in range(4)]
        assert all(torch.equal(logits[k], mmseg_logits[k]) for k in logits), labels
