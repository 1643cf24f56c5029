"""Faults end in an error that says what happened, never in a number: non-finite losses and weights, checkpoints
that do not fit the model (the toy R-50 stage of tests/helpers/toy_config.py)."""
import math
import re
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmseg.apis import init_model

from ifa_mmseg.compat import safe_torch_load
from ifa_mmseg.engine.hooks import NonFiniteCheckHook
from ifa_mmseg.models.utils import CheckpointMismatchError
from ifa_mmseg.utils import NonFiniteError
from ifa_mmseg.utils.official_recipe import official_trained_state_dict
from tests.helpers.launch import TOY_CONFIG, run

ONE_THREAD = dict(OMP_NUM_THREADS='1')


@pytest.fixture(scope='module')
def trained(root, tmp_path_factory):
    """A runner checkpoint of the toy stage (two iterations)."""
    work_dir = tmp_path_factory.mktemp('trained')
    proc = run(root, 'tools/train.py', TOY_CONFIG, '--work-dir', str(work_dir), env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(work_dir / 'iter_2.pth')


def test_training_stops_at_the_first_non_finite_loss_and_saves_nothing_after(root, tmp_path):
    proc = run(root, 'tools/train.py', TOY_CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
               'optim_wrapper.optimizer.lr=1e6', 'train_cfg.max_iters=4', 'default_hooks.checkpoint.interval=1',
               env=ONE_THREAD)
    assert proc.returncode != 0
    assert 'error: training diverged at iteration 2: loss=nan, loss_q_refine=nan' in proc.stderr
    assert "learning rates {'lr': [1000000.0]}" in proc.stderr and 'Traceback' not in proc.stderr
    saved = sorted(p.name for p in tmp_path.glob('iter_*.pth'))
    assert saved == ['iter_1.pth']  # the iteration before the divergence, finite
    assert all(torch.isfinite(v).all() for v in safe_torch_load(str(tmp_path / 'iter_1.pth'))['state_dict'].values()
               if torch.is_floating_point(v))


def test_a_non_finite_weight_is_never_saved():
    runner = SimpleNamespace(iter=7)
    state = {'backbone.a': torch.ones(2), 'backbone.b': torch.tensor([1.0, math.inf]), 'n': torch.tensor(3)}
    with pytest.raises(NonFiniteError, match=r'not saving the checkpoint of iteration 7: 1 weights hold NaN or inf '
                                             r'\(backbone.b\)'):
        NonFiniteCheckHook().before_save_checkpoint(runner, dict(state_dict=state))
    NonFiniteCheckHook().before_save_checkpoint(runner, dict(state_dict={'backbone.a': torch.ones(2)}))


def write_state(path, state) -> str:
    torch.save(dict(state_dict=state, meta={}), str(path))
    return str(path)


def toy_test(root, checkpoint, work_dir, *options):
    return run(root, 'tools/test.py', TOY_CONFIG, checkpoint, '--work-dir', str(work_dir),
               *(('--cfg-options', *options) if options else ()), env=ONE_THREAD)


def test_test_tool_refuses_a_backbone_only_file(root, trained, tmp_path):
    """The case that used to report the random initialisation's mIoU with exit code 0."""
    backbone = {k[len('backbone.'):]: v for k, v in safe_torch_load(trained)['state_dict'].items()}
    path = write_state(tmp_path / 'backbone_only.pth', backbone)
    proc = toy_test(root, path, tmp_path / 'wd')
    assert proc.returncode != 0 and 'mIoU' not in proc.stdout
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith(f'error: {path}: the checkpoint does not fit the model: ')
    assert 'This looks like a backbone-only file' in message and 'model.strict_load=False' in message
    # asked for explicitly, what fits is loaded (nothing here) and the run completes
    allowed = toy_test(root, path, tmp_path / 'partial', 'model.strict_load=False')
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    from ifa_mmseg.apis import FewShotInferencer
    cfg = Config.fromfile(f'{root}/configs/ifa/deepglobe_1shot.py')  # the toy stage's model, with a test pipeline
    with pytest.raises(CheckpointMismatchError, match='backbone-only file'):
        FewShotInferencer(cfg, path, 'cpu')
    cfg.model.strict_load = False
    assert FewShotInferencer(cfg, path, 'cpu').model.strict_load is False
    assert not init_model(cfg, path, device='cpu').training


@pytest.mark.parametrize('change,message', [
    (lambda sd: {k: v for k, v in sd.items() if not k.startswith('backbone.layer3.5.')},
     r'15 of the model\'s \d+ weights and buffers are missing \(backbone.layer3.5.conv1.weight, .* and \d+ more\)'
     r'\. The file was saved from another model'),
    (lambda sd: dict(sd, **{'backbone.layer4.0.conv1.weight': torch.zeros(1)}),
     r'1 keys fit no weight \(backbone.layer4.0.conv1.weight\)'),
    (lambda sd: {k: (v * math.nan if k.endswith('layer3.0.conv1.weight') else v) for k, v in sd.items()},
     r'holds non-finite values \(NaN or inf\) in 1 weights or buffers \(backbone.layer3.0.conv1.weight\)'),
    (lambda sd: {'head.fc.weight': torch.zeros(2)}, r"None of the model's weights is in the file"),
])
def test_mismatched_checkpoints_are_refused_by_every_loader(root, trained, tmp_path, change, message):
    """tools/test.py (load_from), mmseg's init_model and the inferencer refuse the file, naming it and the keys."""
    from ifa_mmseg.apis import FewShotInferencer
    path = write_state(tmp_path / 'changed.pth', change(safe_torch_load(trained)['state_dict']))
    proc = toy_test(root, path, tmp_path / 'wd')
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f'error: {path}: ')
    assert re.search(message, proc.stderr), proc.stderr[-2000:]
    cfg = Config.fromfile(f'{root}/{TOY_CONFIG}')
    with pytest.raises(CheckpointMismatchError, match=message):
        init_model(cfg, path, device='cpu')
    with pytest.raises(CheckpointMismatchError, match=message):
        FewShotInferencer(cfg, path, 'cpu')


def test_an_unconverted_official_checkpoint_is_sent_to_the_converter(root, tmp_path):
    path = write_state(tmp_path / 'official.pth', official_trained_state_dict(50))
    with pytest.raises(CheckpointMismatchError, match=r'an official IFA/SSP checkpoint: convert it first with '
                                                      r'tools/model_converters/ifa_official_to_mmseg.py'):
        init_model(Config.fromfile(f'{root}/{TOY_CONFIG}'), path, device='cpu')
