"""The shipped configs: official constants, and one adaptation + evaluation run on a fake layout."""
import glob
import json
import os
import subprocess
import sys

import pytest
import torch
from mmengine import Config
from mmseg.registry import DATASETS, MODELS

from ifa_mmseg.engine.protocol import resolve_protocol
from ifa_mmseg.models import IFAResNet, convert_official

from .helpers import fake_layouts
from .helpers.official_recipe import official_trained_state_dict
from .helpers.small_config import SMALL_TARGET

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(__file__)), 'configs', 'ifa', '*.py')))
TARGETS = ('deepglobe', 'isic', 'chestxray', 'fss1000')


def load(root, name):
    """The shipped config, resolved as FewShotRunner resolves it."""
    cfg = Config.fromfile(f'{root}/configs/ifa/{name}.py')
    cfg.work_dir = 'work_dirs/test'
    resolve_protocol(cfg)
    return cfg


@pytest.mark.parametrize('shot', [1, 5])
def test_source_configs(root, shot):
    cfg = load(root, f'pascal_source_{shot}shot')
    assert cfg.train_dataloader.batch_size == {1: 12, 5: 6}[shot]
    assert cfg.train_dataloader.dataset.shot == shot and cfg.train_dataloader.dataset.fold == 4
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4)
    assert cfg.param_scheduler[0].milestones == {1: [666, 1333], 5: [1333, 2666]}[shot]
    assert cfg.train_cfg.max_epochs == 20
    assert set(cfg.model.decode_head.loss_weights) == {'q_refine', 'q1', 'q_self', 's_self', 's1'}
    assert [h.type for h in cfg.custom_hooks] == ['EpisodeResampleHook']
    assert cfg.get('val_dataloader') is None  # selection='last'


@pytest.mark.parametrize('target', TARGETS)
@pytest.mark.parametrize('shot', [1, 5])
def test_target_configs(root, target, shot):
    cfg = load(root, f'{target}_{shot}shot')
    assert cfg.load_from == f'work_dirs/pascal_source_{shot}shot/epoch_20.pth'
    assert cfg.optim_wrapper.optimizer.lr == (5e-6 if target == 'chestxray' else 5e-4)
    assert cfg.train_cfg.max_epochs == 20
    assert len(cfg.model.decode_head.loss_weights) == 9
    assert cfg.test_dataloader.dataset.shot == cfg.train_dataloader.dataset.dataset.shot == shot
    assert cfg.test_evaluator.official_batch_size == {1: 96, 5: 48}[shot]
    assert cfg.test_cfg.seeds == (0, 1, 2, 3, 4)
    assert cfg.train_dataloader.dataset.support_pool == 'standard'
    assert cfg.test_dataloader.dataset.episode_sampling == 'standard'
    if target == 'fss1000':
        assert cfg.test_dataloader.dataset.split == 'test'


@pytest.mark.parametrize('target', TARGETS)
@pytest.mark.parametrize('shot', [1, 5])
def test_official_protocol_configs(root, target, shot):
    """``*_official.py``: official sampling and support pool, selection on seed-0 test episodes."""
    batch = {1: 12, 5: 6}[shot]
    source = load(root, f'pascal_source_{shot}shot_{target}_official')
    adapt = load(root, f'{target}_{shot}shot_official')
    assert source.train_cfg.val_begin == 3 and adapt.train_cfg.get('val_begin', 1) == 1
    assert adapt.load_from == f'work_dirs/pascal_source_{shot}shot_{target}_official/best.pth'
    assert adapt.source_config == f'configs/ifa/pascal_source_{shot}shot_{target}_official.py'
    assert adapt.train_dataloader.dataset.support_pool == 'official'
    assert adapt.train_dataloader.dataset.dataset.episode_sampling == 'official'
    assert adapt.test_dataloader.dataset.episode_sampling == 'official'
    assert adapt.test_evaluator.official_batch_size == {1: 96, 5: 48}[shot]
    for cfg in (source, adapt):
        assert (cfg.selection, cfg.episode_sampling) == ('target_test', 'official')
        assert cfg.train_dataloader.batch_size == batch
        hook = cfg.default_hooks.checkpoint
        assert (hook.type, hook.save_best, hook.rule) == ('FewShotCheckpointHook', 'official.mIoU', 'greater_equal')
        val = cfg.val_dataloader
        assert val.batch_size == batch and cfg.val_evaluator.official_batch_size == batch
        assert (val.dataset.seed, val.dataset.shot, val.dataset.episode_sampling) == (0, shot, 'official')
        assert val.dataset.type == adapt.test_dataloader.dataset.type
        assert cfg.val_evaluator.protocols == ('official', )
    if target == 'fss1000':
        assert adapt.test_dataloader.dataset.split == source.val_dataloader.dataset.split == 'val'
        assert adapt.train_dataloader.dataset.get('pool_dataset') is None


@pytest.mark.parametrize('path', CONFIGS)
def test_every_config_builds_its_model(path):
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    assert MODELS.build(cfg.model).decode_head.support_order == 'correct'


def run(root, *args):
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run([sys.executable, '-W', 'ignore', *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)


def test_missing_source_checkpoint_says_what_to_run(root, tmp_path):
    proc = run(root, 'tools/train.py', 'configs/ifa/isic_5shot.py', '--work-dir', str(tmp_path))
    assert proc.returncode != 0
    assert 'work_dirs/pascal_source_5shot/epoch_20.pth' in proc.stderr
    assert 'python tools/train.py configs/ifa/pascal_source_5shot.py' in proc.stderr


PROTOCOLS = dict(
    # the standard pool avoids the queries of the evaluated seeds; the last epoch is tested
    standard=("_base_ = '{root}/configs/ifa/deepglobe_1shot.py'" + SMALL_TARGET + """
train_dataloader = dict(batch_size=6)
train_cfg = dict(max_epochs=2)
""", 'epoch_2.pth'),
    # supports from the test pool, best epoch on the seed-0 test episodes
    official=("_base_ = '{root}/configs/ifa/deepglobe_1shot_official.py'" + SMALL_TARGET + """
train_cfg = dict(max_epochs=3)
""", 'best.pth'))


@pytest.mark.parametrize('protocol', sorted(PROTOCOLS))
def test_deepglobe_adaptation_and_test_on_fake_layout(root, tmp_path, protocol):
    data = str(tmp_path / 'data')
    fake_layouts.write_deepglobe(data)
    ckpt = str(tmp_path / 'source.pth')
    backbone = convert_official(official_trained_state_dict(50), IFAResNet(depth=50).state_dict())
    sd = {f'backbone.{k}': v for k, v in backbone.items()}
    torch.save(dict(state_dict=sd), ckpt)
    template, tested = PROTOCOLS[protocol]
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(template.format(root=root, ckpt=ckpt, data=data))
    work = tmp_path / 'work'
    # facts changed on the command line reach the pool's exclusion set and the test
    options = ['--cfg-options', 'test_episodes=10', 'test_seeds=[3,4]']
    proc = run(root, 'tools/train.py', str(cfg), '--work-dir', str(work), *options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((work / 'protocol.json').read_text())
    assert (record['mode'], record['stage'], record['test_episodes'], record['test_seeds']) == \
        ('train', 'adaptation', 10, [3, 4])
    assert record['checkpoint_selected_on_test_set'] == (protocol == 'official')
    if protocol == 'standard':
        pool = json.loads((work / 'support_pool.json').read_text())  # the pool is recorded in the work dir
        assert pool['eval_seeds'] == [3, 4]
        evaluated = [DATASETS.build(dict(type='DeepglobeDataset', data_root=data, shot=1, num_episodes=10, seed=s))
                  for s in (3, 4)]
        queries = {os.path.relpath(ds.get_data_info(i)['query']['img_path'], data) for ds in evaluated
                   for i in range(len(ds))}
        pooled = {p for images in pool['supports'].values() for p in images}
        assert len(pooled) == record['pool_images'] == 6 and not pooled & queries
        assert record['excluded_test_queries'] == len(queries)
    else:
        assert not (work / 'support_pool.json').exists()
        log = proc.stdout + proc.stderr
        assert log.count('official.mIoU:') == 3  # one selection evaluation per epoch
        assert os.readlink(work / 'best.pth').startswith('best_official.mIoU_epoch_')
    proc = run(root, 'tools/test.py', str(cfg), str(work / tested), '--work-dir', str(work), *options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    for key in ('mIoU', 'FBIoU', 'official.mIoU', 'IoU.agriculture', 'mIoU_ci95', 'episode seed 4 (2/2): 10 episodes'):
        assert key in log, key
    record = json.loads((work / 'protocol.json').read_text())
    assert (record['mode'], record['test_episodes_per_seed'], record['official_batch_size']) == ('test', 10, 96)
    assert ('checkpoint selected on the test set' in log) == (protocol == 'official')


def test_episode_resample_hook(tmp_path):
    from types import SimpleNamespace

    from mmseg.registry import DATASETS

    from ifa_mmseg.engine import EpisodeResampleHook
    fake_layouts.write_deepglobe(str(tmp_path))
    ds = DATASETS.build(dict(type='DeepglobeDataset', data_root=str(tmp_path), num_episodes=12, seed=3))
    runner = SimpleNamespace(train_dataloader=SimpleNamespace(dataset=ds, persistent_workers=False), epoch=0)

    def table():
        return [(e['query']['img_path'], [s['img_path'] for s in e['supports']]) for e in map(ds.get_data_info,
                                                                                            range(len(ds)))]

    first = table()
    EpisodeResampleHook().before_train_epoch(runner)
    assert table() == first
    runner.epoch = 1
    EpisodeResampleHook().before_train_epoch(runner)
    second = table()
    assert second != first and len(second) == 12
    assert [(e['query']['img_path'], [s['img_path'] for s in e['supports']])
            for e in ds.generate_episodes(4)] == second
    runner.train_dataloader.persistent_workers = True
    with pytest.raises(ValueError, match='persistent_workers'):
        EpisodeResampleHook().before_train_epoch(runner)


@pytest.fixture(scope='module')
def released_checkpoint(root, tmp_path_factory):
    """An official-format trained checkpoint converted with the documented command."""
    folder = tmp_path_factory.mktemp('released')
    torch.save(official_trained_state_dict(50), folder / 'official.pth')
    proc = run(root, 'tools/model_converters/ifa_official_to_mmseg.py', str(folder / 'official.pth'),
               str(folder / 'converted.pth'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(folder / 'converted.pth')


WRITERS = dict(deepglobe=fake_layouts.write_deepglobe, isic=fake_layouts.write_isic,
               chestxray=fake_layouts.write_chestxray,
               fss1000=lambda root: fake_layouts.write_fss1000(root, fake_layouts.fss_classes('val')))


@pytest.mark.parametrize('target', TARGETS)
def test_released_checkpoint_under_the_official_protocol(root, tmp_path, released_checkpoint, target):
    """The released models' route (configs/ifa/README.md): convert, then tools/test.py with the *_official.py config."""
    data = str(tmp_path / 'data')
    WRITERS[target](data)
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f"_base_ = '{root}/configs/ifa/{target}_1shot_official.py'" + SMALL_TARGET.format(ckpt='', data=data))
    proc = run(root, 'tools/test.py', str(cfg), released_checkpoint, '--work-dir', str(tmp_path / 'work'),
               '--cfg-options', 'test_seeds=[0]')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'official.mIoU' in proc.stdout + proc.stderr
