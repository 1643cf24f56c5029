"""Resume that resumes, on the real stages: SIGKILL in mid-run, --resume, bit-identical final weights.

Adaptation runs the shipped Deepglobe configs (both protocols) from a converted official
checkpoint (``load_from``), on a fake Deepglobe layout at 64 px; source training runs the
shipped demo source config on a small synthetic source domain. The work dir's files decide
what --resume continues from, whatever ``last_checkpoint`` says or whichever file is broken,
and a kill during a save leaves no partial file under a checkpoint's name.
"""
import os
import shutil

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel

from ifa_mmseg.datasets.synthetic import make_synthetic_benchmark
from ifa_mmseg.engine import FewShotRunner
from ifa_mmseg.engine.checkpoints import PARTIAL_SUFFIX, checkpoint_template, find_resume_checkpoint, list_checkpoints
from ifa_mmseg.models import IFAResNet, convert_official

from .helpers import fake_layouts
from .helpers.launch import TOY_CONFIG, max_weight_difference, run
from .helpers.official_recipe import official_trained_state_dict
from .helpers.small_config import SMALL_TARGET

FAULT = """
custom_imports = dict(imports=['ifa_mmseg', 'tests.helpers.fault_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='EpisodeResampleHook'), dict(type='FaultAtIterHook')]
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
    """An official trained checkpoint in the released key format, converted (the route of configs/ifa/README.md)."""
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


# deepglobe_1shot keeping every epoch's checkpoint, for work dirs assembled from an uninterrupted run's
KEEP_ALL = ADAPTATION + """
default_hooks = dict(checkpoint=dict(max_keep_ckpts=3))
"""


@pytest.fixture(scope='module')
def adaptation(root, tmp_path_factory, converted_official):
    """The config and the work dir (epoch_1.pth to epoch_3.pth) of an uninterrupted adaptation run."""
    base = tmp_path_factory.mktemp('adaptation')
    fake_layouts.write_deepglobe(str(base / 'data'))
    cfg = base / 'cfg.py'
    cfg.write_text(KEEP_ALL.format(root=root, config='deepglobe_1shot', ckpt=converted_official, data=base / 'data'))
    whole = base / 'whole'
    proc = run(root, 'tools/train.py', str(cfg), '--work-dir', str(whole))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(cfg), whole


def work_dir_with(tmp_path, whole, *names, pointer=None, name='work'):
    """``tmp_path/name`` holding copies of ``whole``'s checkpoints ``names`` and, unless ``None``, a
    ``last_checkpoint`` holding ``pointer``."""
    work = tmp_path / name
    work.mkdir()
    for ckpt in names:
        shutil.copy(whole / ckpt, work / ckpt)
    if pointer is not None:
        (work / 'last_checkpoint').write_text(pointer)
    return work


def resume(root, cfg, work):
    """--resume in ``work``; returns the process and its log."""
    proc = run(root, 'tools/train.py', cfg, '--work-dir', str(work), '--resume')
    return proc, proc.stdout + proc.stderr


def assert_resumed_to_the_end(proc, log, work, whole, start):
    """The run resumed from ``work/start`` (not from load_from) and ended with the uninterrupted weights."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'Auto resumed from the latest checkpoint {work}/{start}.' in log
    assert 'starting from' not in log
    assert max_weight_difference(str(whole / 'epoch_3.pth'), str(work / 'epoch_3.pth')) == 0


def test_checkpoint_names(root):
    """The CheckpointHook's names: by epoch in the shipped configs, by iteration in the toy one, or its template."""
    assert checkpoint_template(Config.fromfile(f'{root}/configs/ifa/deepglobe_1shot.py')) == 'epoch_{}.pth'
    assert checkpoint_template(Config.fromfile(f'{root}/{TOY_CONFIG}')) == 'iter_{}.pth'
    assert checkpoint_template(Config(dict(default_hooks=dict(checkpoint=dict(filename_tmpl='e{:03d}.pt'))))) \
        == 'e{:03d}.pt'


def test_checkpoint_files_listed_newest_first(tmp_path):
    """Only the template's names count, ordered by number; best_*, *.part and the other unit's do not."""
    for name in ('epoch_1.pth', 'epoch_10.pth', 'epoch_2.pth', 'best_mIoU_epoch_11.pth', 'iter_50.pth',
                 'epoch_12.pth' + PARTIAL_SUFFIX, 'last_checkpoint', 'e007.pt', 'e010.pt'):
        (tmp_path / name).write_bytes(b'')
    assert list_checkpoints(str(tmp_path), 'epoch_{}.pth') == [str(tmp_path / f'epoch_{n}.pth') for n in (10, 2, 1)]
    assert list_checkpoints(str(tmp_path), 'iter_{}.pth') == [str(tmp_path / 'iter_50.pth')]
    assert list_checkpoints(str(tmp_path), 'e{:03d}.pt') == [str(tmp_path / 'e010.pt'), str(tmp_path / 'e007.pt')]
    assert list_checkpoints(str(tmp_path / 'absent'), 'epoch_{}.pth') == []


def test_resume_without_last_checkpoint(root, tmp_path, adaptation):
    """Checkpoints but no last_checkpoint: resumed from the newest, not retrained from load_from."""
    cfg, whole = adaptation
    work = work_dir_with(tmp_path, whole, 'epoch_1.pth', 'epoch_2.pth')
    proc, log = resume(root, cfg, work)
    assert f'resume: {work}/last_checkpoint is missing; resuming from {work}/epoch_2.pth' in log
    assert_resumed_to_the_end(proc, log, work, whole, 'epoch_2.pth')


def test_resume_with_empty_last_checkpoint(root, tmp_path, adaptation):
    cfg, whole = adaptation
    work = work_dir_with(tmp_path, whole, 'epoch_1.pth', 'epoch_2.pth', pointer='')
    proc, log = resume(root, cfg, work)
    assert f'resume: {work}/last_checkpoint is empty; resuming from {work}/epoch_2.pth' in log
    assert_resumed_to_the_end(proc, log, work, whole, 'epoch_2.pth')


def test_resume_of_a_moved_work_dir(root, tmp_path, adaptation):
    """last_checkpoint holds the absolute path of the folder the work dir was moved from."""
    cfg, whole = adaptation
    old = tmp_path / 'old'
    work_dir_with(tmp_path, whole, 'epoch_1.pth', 'epoch_2.pth', pointer=f'{old}/epoch_2.pth', name='old')
    work = tmp_path / 'moved'
    os.rename(old, work)
    proc, log = resume(root, cfg, work)
    assert (f'resume: {work}/last_checkpoint names {old}/epoch_2.pth, in another folder (the work dir was moved or '
            f'copied; {work}/epoch_2.pth is here); resuming from {work}/epoch_2.pth') in log
    assert_resumed_to_the_end(proc, log, work, whole, 'epoch_2.pth')


@pytest.mark.parametrize('fault', ['empty', 'truncated'])
def test_unreadable_newest_checkpoint_is_skipped(root, tmp_path, adaptation, fault):
    """epoch_3.pth (named by last_checkpoint) empty or cut in half: a warning names it, epoch_2.pth resumes."""
    cfg, whole = adaptation
    work = work_dir_with(tmp_path, whole, 'epoch_1.pth', 'epoch_2.pth', pointer=f'{tmp_path}/work/epoch_3.pth')
    data = (whole / 'epoch_3.pth').read_bytes()
    (work / 'epoch_3.pth').write_bytes(b'' if fault == 'empty' else data[:len(data) // 2])
    proc, log = resume(root, cfg, work)
    why = ('it is empty (0 bytes)' if fault == 'empty'
           else 'it is truncated or not a checkpoint (BadZipFile: File is not a zip file)')
    assert f'WARNING - resume: skipping {work}/epoch_3.pth: {why}' in log
    assert f'names {work}/epoch_3.pth; resuming from {work}/epoch_2.pth' in log
    assert_resumed_to_the_end(proc, log, work, whole, 'epoch_2.pth')


def test_no_readable_checkpoint_is_an_error(tmp_path):
    """Every checkpoint unreadable: an error naming each and why, rather than a start from load_from."""
    (tmp_path / 'epoch_1.pth').write_bytes(b'')
    torch.save(dict(state_dict={}), tmp_path / 'epoch_2.pth')
    with open(tmp_path / 'epoch_2.pth', 'r+b') as f:
        f.truncate(100)
    with pytest.raises(RuntimeError) as err:
        find_resume_checkpoint(str(tmp_path), 'epoch_{}.pth')
    assert str(err.value) == (f'resume: no readable checkpoint in {tmp_path}:\n'
                              f'{tmp_path}/epoch_2.pth: it is truncated or not a checkpoint (BadZipFile: File is not '
                              f'a zip file)\n{tmp_path}/epoch_1.pth: it is empty (0 bytes)')


class TinyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.linear(inputs)


def test_unloadable_checkpoint_error_names_it(tmp_path):
    """A checkpoint whose zip directory is whole but not its start passes the cheap check; the failing
    torch.load of the resume names it."""
    torch.save(dict(state_dict=TinyModel().state_dict()), tmp_path / 'epoch_1.pth')
    with open(tmp_path / 'epoch_1.pth', 'r+b') as f:
        f.write(bytes(100))
    runner = FewShotRunner(model=TinyModel(), work_dir=str(tmp_path), experiment_name=tmp_path.name, resume=True,
                           default_scope='mmseg')
    with pytest.raises(RuntimeError, match=f'^resume from {tmp_path}/epoch_1.pth failed: '):
        runner.load_or_resume()


def test_kill_during_a_save_leaves_no_partial_checkpoint(root, tmp_path, adaptation):
    """SIGKILL half way through writing epoch_2.pth: only a .part file is left; --resume goes on from epoch_1.pth
    and ends with the uninterrupted weights, overwriting the .part file."""
    cfg, whole = adaptation
    work = tmp_path / 'work'
    killed = run(root, 'tools/train.py', cfg, '--work-dir', str(work),
                 env=dict(IFA_FAULT='kill_in_save', IFA_FAULT_ITER='2'))  # epoch 2's first iteration
    assert killed.returncode != 0
    assert sorted(p.name for p in work.glob('*.pth*')) == ['epoch_1.pth', 'epoch_2.pth' + PARTIAL_SUFFIX]
    assert (work / 'last_checkpoint').read_text() == f'{work}/epoch_1.pth'
    proc, log = resume(root, cfg, work)
    assert_resumed_to_the_end(proc, log, work, whole, 'epoch_1.pth')
    assert not list(work.glob('*' + PARTIAL_SUFFIX))
