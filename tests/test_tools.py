"""Our tools/train.py and tools/test.py, single process and 2-process gloo (torchrun)."""
import pickle

import numpy as np
import torch
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
    """tools/dist_train.sh: same global batch (2) on 1 process and on 2 gloo processes -> same weights.

    One intra-op thread in the single process too, as torchrun gives each of its processes: with the default
    threads its kernels round differently, and two SGD steps carry that past the tolerance."""
    one = run(root, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'one'), env=dict(OMP_NUM_THREADS='1'))
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_sh(root, 'dist_train.sh', CONFIG, '2', '--work-dir', str(tmp_path / 'two'), '--cfg-options',
                 'train_dataloader.batch_size=1', port=29581)
    assert two.returncode == 0, two.stderr[-3000:]
    a = safe_torch_load(str(tmp_path / 'one' / 'iter_2.pth'))['state_dict']
    b = safe_torch_load(str(tmp_path / 'two' / 'iter_2.pth'))['state_dict']
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), k
