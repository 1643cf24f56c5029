"""Our tools/train.py and tools/test.py, single process and 2-process gloo (torchrun)."""
import pickle

import numpy as np
import torch
from mmengine.config import Config
from mmseg.registry import MODELS
from PIL import Image

from ifa_mmseg.compat import safe_torch_load
from ifa_mmseg.evaluation import unpack_mask
from tests.helpers.launch import TOY_CONFIG as CONFIG, run, run_sh


def test_train_then_test(root, tmp_path):
    proc = run(root, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
               'train_dataloader.batch_size=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / 'preds.pkl'
    proc = run(root, 'tools/test.py', CONFIG, str(tmp_path / 'iter_2.pth'), '--work-dir', str(tmp_path),
               '--out', str(out), '--show-dir', str(tmp_path / 'vis'), '--num-vis', '2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'results over episode seeds' in log and 'official.mIoU_ci95' in log
    with open(out, 'rb') as f:
        dumped = pickle.load(f)
    assert sorted(dumped) == [0, 1, 2] and all(len(dumped[s]) == 4 for s in dumped)  # every seed kept
    assert unpack_mask(dumped[2][3]).shape == (48, 48) and dumped[2][3]['episode'] == 3
    assert out.stat().st_size < 12 * 1024  # masks only (bit-packed), not the pickled batches
    pictures = sorted(p.relative_to(tmp_path / 'vis').as_posix() for p in (tmp_path / 'vis').rglob('*.png'))
    assert pictures == [f'seed{s}/episode_0000{e}.png' for s in range(3) for e in range(2)]
    panel = np.asarray(Image.open(tmp_path / 'vis' / 'seed0' / 'episode_00000.png'))
    # titled support | query + gt | query + prediction, the 48 px images upscaled to 256 px tiles
    assert panel.shape[0] > 256 and panel.shape[1] >= 3 * 256 and panel.shape[2] == 3


def test_torchrun_two_cpu_processes_match_one(root, tmp_path):
    """tools/dist_train.sh: same global batch (2) on 1 process and on 2 gloo processes -> the same weights, within
    float32 rounding.

    Every process has one intra-op thread (torchrun gives each of its processes one; with the default threads the
    single process's kernels round differently, and two SGD steps carried that to 1.1e-6). The gradients are still
    summed in another order (one batch of 2 against two processes' all-reduce). Measured on 2026-12-05 (two runs,
    this 2-core CPU): the weights differ by at most 1.49e-8, one unit in the last place of a weight below 0.25, and
    by at most 0.05 % of the tensor's largest update. The tolerance: 4 float32 ulps of the weight plus 1 % of the
    tensor's largest update (both runs start from one saved initialisation, so the update is known).
    """
    cfg = Config.fromfile(f'{root}/{CONFIG}')
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
    start = model.state_dict()
    torch.save(dict(state_dict=start, meta={}), str(tmp_path / 'start.pth'))
    load = f'load_from={tmp_path / "start.pth"}'
    one = run(root, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'one'), '--cfg-options', load,
              env=dict(OMP_NUM_THREADS='1'))
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_sh(root, 'dist_train.sh', CONFIG, '2', '--work-dir', str(tmp_path / 'two'), '--cfg-options',
                 'train_dataloader.batch_size=1', load, port=29581, env=dict(OMP_NUM_THREADS='1'))
    assert two.returncode == 0, two.stderr[-3000:]
    a = safe_torch_load(str(tmp_path / 'one' / 'iter_2.pth'))['state_dict']
    b = safe_torch_load(str(tmp_path / 'two' / 'iter_2.pth'))['state_dict']
    assert a.keys() == b.keys()
    eps = torch.finfo(torch.float32).eps
    moved = False
    for k, w in start.items():
        if not torch.is_floating_point(w):
            assert torch.equal(a[k], b[k]), k
            continue
        update = float((a[k] - w).abs().max())
        moved |= update > 0
        bound = 4 * eps * torch.maximum(a[k].abs(), b[k].abs()) + 0.01 * update
        assert bool(((a[k] - b[k]).abs() <= bound).all()), (k, float((a[k] - b[k]).abs().max()), update)
    assert moved
