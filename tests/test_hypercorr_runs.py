"""HSNet and PATNet end to end through tools/train.py and tools/test.py, with the shipped configs.

Source training is the CPU demo's (configs/demo/{hsnet,patnet}_source.py: the synthetic shape domain in the
FSS-1000 layout, ResNet-50 randomly initialised and frozen); the target stage is the shipped
configs/{hsnet,patnet}/*_deepglobe_1shot.py on the synthetic Deepglobe layout: its default
adaptation_labels='none' tests the source checkpoint, adaptation_labels='pool' trains the head first.
Everything is tiny (64 px, one training step, a few episodes): the test is that the routes run and record
what they ran, not what they score.
"""
import json
import os

import pytest

from ifa_mmseg.datasets import make_synthetic_benchmark

from .helpers.launch import logged_metrics, run
from .helpers.small_config import SMALL_TARGET

PIPELINE = """[dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=(64, 64))]"""
SOURCE = """_base_ = '{root}/configs/demo/{model}_source.py'
data_root = '{data}'
train_dataloader = dict(batch_size=2, dataset=dict(num_episodes=2, pipeline=%s))
train_cfg = dict(max_epochs=1)
""" % PIPELINE
# one adaptation step (adaptation_labels='pool'), when asked for
TARGET = "_base_ = '{root}/configs/{model}/{model}_deepglobe_1shot.py'" + SMALL_TARGET + """
train_dataloader = dict(batch_size=2, dataset=dict(num_episodes=2))
train_cfg = dict(max_epochs=1)
"""
OPTIONS = ('--cfg-options', 'test_episodes=4', 'metrics=[standard]')


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('hypercorr') / 'data')
    make_synthetic_benchmark(root, seed=3, size=64, images_per_class=3, num_tiles=18)
    return root


def record(work_dir) -> dict:
    return json.loads((work_dir / 'protocol.json').read_text())


def train_source(root: str, data: str, tmp_path, model: str) -> str:
    """One step of the demo source training of ``model``; returns its checkpoint."""
    cfg = tmp_path / f'{model}_source.py'
    cfg.write_text(SOURCE.format(root=root, model=model, data=data))
    work = tmp_path / f'{model}_source'
    proc = run(root, 'tools/train.py', str(cfg), '--work-dir', str(work))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (record(work)['stage'], record(work)['train_batch_size']) == ('source', 2)
    return str(work / 'epoch_1.pth')


def evaluate(root: str, cfg, checkpoint: str, work, labels: str) -> dict:
    """tools/test.py of the target config; returns the logged metrics."""
    proc = run(root, 'tools/test.py', str(cfg), checkpoint, '--work-dir', str(work), *OPTIONS,
               f'adaptation_labels={labels}')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (record(work)['mode'], record(work)['adaptation_labels']) == ('test', labels)
    metrics = logged_metrics(str(work))
    assert 0 <= metrics['mIoU'] <= 100 and 'official.mIoU' not in metrics
    return metrics


def test_patnet_source_then_target_without_adaptation(root, data, tmp_path):
    """PATNet's setting, the target configs' default: the source checkpoint tested on the target."""
    ckpt = train_source(root, data, tmp_path, 'patnet')
    cfg = tmp_path / 'target.py'
    cfg.write_text(TARGET.format(root=root, model='patnet', ckpt=ckpt, data=data))
    evaluate(root, cfg, ckpt, tmp_path / 'test', 'none')


def test_hsnet_source_then_pool_adaptation(root, data, tmp_path):
    """adaptation_labels='pool' on a non-IFA model: the head trains on IFA pseudo-query episodes of the target."""
    source = train_source(root, data, tmp_path, 'hsnet')
    cfg = tmp_path / 'target.py'
    cfg.write_text(TARGET.format(root=root, model='hsnet', ckpt=source, data=data))
    work = tmp_path / 'adapt'
    proc = run(root, 'tools/train.py', str(cfg), '--work-dir', str(work), *OPTIONS, 'adaptation_labels=pool')
    assert proc.returncode == 0, proc.stderr[-3000:]
    adapted = record(work)
    assert (adapted['stage'], adapted['adaptation_labels'], adapted['load_from']) == ('adaptation', 'pool', source)
    pool = json.loads((work / 'support_pool.json').read_text())
    assert adapted['pool_images'] == sum(map(len, pool['supports'].values())) > 0
    assert os.path.isfile(work / 'epoch_1.pth')
    evaluate(root, cfg, str(work / 'epoch_1.pth'), tmp_path / 'test', 'pool')
