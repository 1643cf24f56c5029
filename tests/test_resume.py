"""Resume that resumes, on the real stages: SIGKILL in mid-run, --resume, bit-identical final weights.

Adaptation runs the shipped Deepglobe configs (both protocols) from a converted official
checkpoint (``load_from``), on a fake Deepglobe layout at 64 px; source training runs the
shipped demo source config on a small synthetic source domain.
"""
import pytest
import torch

from ifa_mmseg.datasets.synthetic import make_synthetic_benchmark
from ifa_mmseg.models import IFAResNet, convert_official

from .helpers import fake_layouts
from .helpers.launch import max_weight_difference, run
from .helpers.official_recipe import official_trained_state_dict
from .helpers.small_config import SMALL_TARGET

FAULT = """
custom_imports = dict(imports=['ifa_mmseg', 'tests.helpers.fault_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='FaultAtIterHook')]
"""
ADAPTATION = "_base_ = '{root}/configs/ifa/{config}.py'" + SMALL_TARGET + """
train_dataloader = dict(batch_size=6, dataset=dict(num_episodes=12))  # 2 iterations per epoch
train_cfg = dict(max_epochs=3)
""" + FAULT
SOURCE = """_base_ = '{root}/configs/demo/source.py'
data_root = '{data}'
train_cfg = dict(max_epochs=3)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=3, eta_min=1e-3)]
""" + FAULT


def kill_then_resume(root, tmp_path, cfg_text, kill_iter, last, resume_options=()):
    """An uninterrupted run (started with --resume on an empty work dir), a run SIGKILLed at iteration
    ``kill_iter``, and its --resume; returns (uninterrupted dir, resumed dir, resumed log)."""
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(cfg_text)
    whole, broken = tmp_path / 'whole', tmp_path / 'broken'
    proc = run(root, 'tools/train.py', str(cfg), '--work-dir', str(whole), '--resume')
    assert proc.returncode == 0, proc.stderr[-3000:]
    killed = run(root, 'tools/train.py', str(cfg), '--work-dir', str(broken),
                 env=dict(IFA_FAULT='kill', IFA_FAULT_ITER=str(kill_iter), IFA_FAULT_RANK='0'))
    assert killed.returncode != 0 and not (broken / last).exists()
    resumed = run(root, 'tools/train.py', str(cfg), '--work-dir', str(broken), '--resume', *resume_options)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert max_weight_difference(str(whole / last), str(broken / last)) == 0
    return whole, broken, proc.stdout + proc.stderr, resumed.stdout + resumed.stderr


@pytest.fixture(scope='module')
def converted_official(tmp_path_factory):
    """An official trained checkpoint in the released key format, converted (the README route)."""
    path = tmp_path_factory.mktemp('ckpt') / 'converted.pth'
    backbone = convert_official(official_trained_state_dict(50), IFAResNet(depth=50).state_dict())
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in backbone.items()}), path)
    return str(path)


@pytest.mark.parametrize('config', ['deepglobe_1shot', 'deepglobe_1shot_official'])
def test_adaptation_killed_then_resumed_is_bit_identical(root, tmp_path, converted_official, config):
    data = str(tmp_path / 'data')
    fake_layouts.write_deepglobe(data)
    text = ADAPTATION.format(root=root, config=config, ckpt=converted_official, data=data)
    # killed in the middle of epoch 2 (iteration 3 of 6); the resumed run loads epoch_1.pth, with 2 workers
    whole, broken, first, log = kill_then_resume(root, tmp_path, text, kill_iter=3, last='epoch_3.pth',
                                                 resume_options=('--cfg-options', 'train_dataloader.num_workers=2'))
    assert f'resume: no checkpoint in {whole}; starting from {converted_official}' in first
    assert f'Auto resumed from the latest checkpoint {broken}/epoch_1.pth' in log
    if config.endswith('official'):
        assert (whole / 'best.pth').resolve().name == (broken / 'best.pth').resolve().name
        assert 'checkpoint selected on the test set' in log


def test_source_training_killed_then_resumed_is_bit_identical(root, tmp_path):
    data = str(tmp_path / 'data')
    make_synthetic_benchmark(data, size=32, images_per_class=4, num_tiles=12)
    text = SOURCE.format(root=root, data=data)
    # 48 episodes at batch 8: 6 iterations per epoch; killed in epoch 2
    _, broken, _, log = kill_then_resume(root, tmp_path, text, kill_iter=8, last='epoch_3.pth')
    assert f'Auto resumed from the latest checkpoint {broken}/epoch_1.pth' in log
