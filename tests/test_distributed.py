"""torchrun with 2 gloo processes: evaluation equal to one process, and resume after a killed rank."""
import pickle

import numpy as np
import pytest

from ifa_mmseg.evaluation import unpack_mask

from tests.helpers.launch import TOY_CONFIG, logged_metrics, max_weight_difference, run, run_sh

FAULT_CONFIG = 'tests/helpers/toy_fault_config.py'


@pytest.fixture(scope='module')
def uninterrupted(root, tmp_path_factory):
    """Work dir of 6 uninterrupted iterations on 2 processes."""
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    proc = run_sh(root, 'dist_train.sh', FAULT_CONFIG, '2', '--work-dir', str(work_dir), port=29611)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work_dir


def test_killed_rank_then_resume_matches_uninterrupted(root, tmp_path, uninterrupted):
    """Rank 1 is SIGKILLed at the start of iteration 5 (after iter_4.pth); --resume ends with the same weights."""
    killed = run_sh(root, 'dist_train.sh', FAULT_CONFIG, '2', '--work-dir', str(tmp_path), port=29612,
                    env=dict(IFA_FAULT='kill', IFA_FAULT_ITER='4'))
    assert killed.returncode != 0
    assert (tmp_path / 'iter_4.pth').exists() and not (tmp_path / 'iter_6.pth').exists()
    resumed = run_sh(root, 'dist_train.sh', FAULT_CONFIG, '2', '--work-dir', str(tmp_path), '--resume',
                     port=29613)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'Auto resumed from the latest checkpoint {tmp_path}/iter_4.pth' in resumed.stdout
    assert max_weight_difference(str(uninterrupted / 'iter_6.pth'), str(tmp_path / 'iter_6.pth')) == 0


def test_two_process_evaluation_matches_one(root, tmp_path, uninterrupted):
    """tools/test.py vs tools/dist_test.sh on 2 processes: same episodes, predictions and metrics.

    5 episodes on 2 processes: DefaultSampler pads rank 1 with episode 0 again and the
    evaluator's result collection drops the padding (the metric raises on a duplicate).
    """
    checkpoint = str(uninterrupted / 'iter_6.pth')
    options = ['--cfg-options', 'test_dataloader.dataset.num_episodes=5']
    one = run(root, 'tools/test.py', TOY_CONFIG, checkpoint, '--work-dir', str(tmp_path / 'one'),
              '--out', str(tmp_path / 'one.pkl'), *options, env=dict(OMP_NUM_THREADS='1'))  # as each torchrun process
    assert one.returncode == 0, one.stderr[-3000:]
    # in tmp_path: mmengine gathers the ranks' results through a .dist_test/ folder it leaves in the cwd
    two = run_sh(root, 'dist_test.sh', f'{root}/{TOY_CONFIG}', checkpoint, '2', '--work-dir',
                 str(tmp_path / 'two'), '--out', str(tmp_path / 'two.pkl'), *options, port=29614, cwd=str(tmp_path))
    assert two.returncode == 0, two.stderr[-3000:]
    assert 'episode seed 2 (3/3): 5 episodes' in two.stdout + two.stderr
    metrics = logged_metrics(str(tmp_path / 'one'))
    assert {'mIoU', 'FBIoU', 'official.mIoU', 'IoU.0', 'IoU.1', 'mIoU_ci95', 'official.mIoU_ci95'} <= set(metrics)
    assert logged_metrics(str(tmp_path / 'two')) == metrics
    # --out holds every seed's predicted masks, bit-packed
    preds = []
    for name in ('one.pkl', 'two.pkl'):
        with open(tmp_path / name, 'rb') as f:
            preds.append(pickle.load(f))
    assert sorted(preds[0]) == sorted(preds[1]) == [0, 1, 2]
    for seed in range(3):
        assert [p['episode'] for p in preds[0][seed]] == [p['episode'] for p in preds[1][seed]] == list(range(5))
        for p, q in zip(preds[0][seed], preds[1][seed]):
            assert p['shape'] == (48, 48) and np.array_equal(unpack_mask(p), unpack_mask(q))
