"""Smoke subset, run on the oldest supported stack: import, every config, each kind of checkpoint, train, test."""
import glob
import os

import mmcv
import mmengine
import mmseg
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

import ifa_mmseg
from ifa_mmseg.compat import safe_torch_load
from ifa_mmseg.engine.protocol import resolve_protocol
from tests.helpers.launch import TOY_CONFIG, run
from tests.helpers.official_recipe import official_trained_state_dict
# the checkpoint-safety tests, unchanged, on this stack too
from tests.test_compat import (test_getattr_is_restricted, test_malicious_pickle_is_refused,  # noqa: F401
                               test_mmengine_checkpoint_objects_load)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'ifa', '*.py')) +
                 glob.glob(os.path.join(ROOT, 'configs', 'demo', '*.py')))


def test_import_and_versions():
    print(f'torch {torch.__version__}, numpy {np.__version__}, mmengine {mmengine.__version__}, '
          f'mmcv {mmcv.__version__}, mmseg {mmseg.__version__}')
    for name in ('IFAResNet', 'IFAHead', 'IFASegmentor', 'FewShotSegDataPreProcessor'):
        assert MODELS.get(name) is not None, name
    assert ifa_mmseg.get_config_path('ifa/deepglobe_1shot.py').endswith(os.path.join('ifa', 'deepglobe_1shot.py'))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_config_resolves(path, tmp_path):
    cfg = Config.fromfile(path)
    cfg.work_dir = str(tmp_path)
    if cfg.get('source_config') and not cfg.get('load_from'):
        cfg.load_from = 'unused.pth'
    resolve_protocol(cfg)


def test_a_model_builds_and_loads_a_converted_official_checkpoint(tmp_path):
    official = tmp_path / 'official.pth'
    torch.save(official_trained_state_dict(50), official)
    proc = run(ROOT, 'tools/model_converters/ifa_official_to_mmseg.py', str(official), str(tmp_path / 'conv.pth'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'ifa', 'deepglobe_1shot.py'))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(tmp_path / 'conv.pth'), map_location='cpu', strict=True)
    ckpt = safe_torch_load(str(tmp_path / 'conv.pth'))
    key = next(iter(model.backbone.state_dict()))
    assert torch.equal(model.backbone.state_dict()[key], ckpt['state_dict']['backbone.' + key])


def test_train_resume_test(tmp_path):
    """Two training iterations, a Runner resume from that checkpoint (one more iteration), one test."""
    work = str(tmp_path)
    proc = run(ROOT, 'tools/train.py', TOY_CONFIG, '--work-dir', work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.isfile(os.path.join(work, 'iter_2.pth'))
    proc = run(ROOT, 'tools/train.py', TOY_CONFIG, '--work-dir', work, '--resume', '--cfg-options',
               'train_cfg.max_iters=3', 'default_hooks.checkpoint.interval=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 2' in log, log[-3000:]
    resumed = safe_torch_load(os.path.join(work, 'iter_3.pth'))
    assert resumed['meta']['iter'] == 3 and 'message_hub' in resumed
    proc = run(ROOT, 'tools/test.py', TOY_CONFIG, os.path.join(work, 'iter_3.pth'), '--work-dir', work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'official.mIoU_ci95' in proc.stdout + proc.stderr


@pytest.mark.parametrize('engine', ['loop', 'vmap'])
def test_per_episode_adaptation(root, engine):
    """adaptation_labels='episode' on the R-50 on this stack (the frozen prefix cut, functional_call, vmap):
    episodes independent."""
    from ifa_mmseg.models import EpisodeAdapter
    from tests.helpers.models import build_r50
    model = build_r50(root).eval()
    torch.manual_seed(0)
    b, size = 2, 48
    supports, masks = torch.randn(b, 1, 3, size, size), (torch.rand(b, 1, size, size) > 0.6).long()
    queries, query_masks = torch.randn(b, 2, 3, size, size), (torch.rand(b, 2, size, size) > 0.6).long()
    adapter = EpisodeAdapter(steps=1, queries_per_step=2, optimizer=dict(type='SGD', lr=0.05), params='trainable',
                             engine=engine)

    def predict(idx):
        params = adapter.adapt(model, supports[idx], masks[idx], queries[idx], query_masks[idx])
        with torch.no_grad():
            return model.forward_episode(supports[idx, 0], supports[idx], masks[idx], params=params)['q_refine']

    batch = predict(slice(None))
    assert (predict(slice(0, 1))[0] - batch[0]).abs().max() <= 1e-5
    with torch.no_grad():
        assert (model.forward_episode(supports[:, 0], supports, masks)['q_refine'] - batch).abs().max() > 1e-3
