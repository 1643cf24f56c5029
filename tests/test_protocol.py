"""Each fact once: every single-key override of every shipped config reaches everything that depends on it."""
import glob
import os

import pytest
from mmengine import Config

from ifa_mmseg.engine.protocol import ProtocolError, resolve_protocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'configs', '*', '*.py'))
                 if '_base_' not in p)
FEWSHOT_TYPES = {'Pascal5iDataset', 'DeepglobeDataset', 'ISICDataset', 'ChestXrayDataset', 'FSS1000Dataset'}


def other(value, choices):
    return next(c for c in choices if c != value)


# key -> the new value given the config's current one
OVERRIDES = dict(
    data_root=lambda v: '/elsewhere/data',
    shot=lambda v: 5 if v == 1 else 1,
    test_episodes=lambda v: 37,
    test_seeds=lambda v: [7, 8],
    metrics=lambda v: ['standard'],
    fss_split=lambda v: other(v, ('test', 'val')),
    selection=lambda v: other(v, ('last', 'target_test')),
    adaptation_labels=lambda v: other(v, ('pool', 'test_pool')),
)


def resolved(path, **options):
    """``path`` with ``options`` (as --cfg-options would give them), resolved from the repository root."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        cfg = Config.fromfile(path)
        cfg.merge_from_dict(options)
        cfg.work_dir = 'work_dirs/test_protocol'
        return cfg, resolve_protocol(cfg)
    finally:
        os.chdir(cwd)


def check_derived(cfg, record, stated_batch, stated_load_from=None):
    """Every value the facts and protocol keys decide, checked against the facts (not against the resolver)."""
    shot, seeds, episodes = cfg.shot, list(cfg.test_seeds), cfg.test_episodes
    datasets = []
    test_ds = cfg.get('test_dataloader', {}).get('dataset')
    if test_ds is not None:
        datasets.append(test_ds)
        assert test_ds.get('num_episodes') == episodes
        assert test_ds.seed == seeds[0] and test_ds.episode_sampling == cfg.episode_sampling
        if test_ds.type == 'FSS1000Dataset':
            assert test_ds.split == cfg.fss_split
        assert list(cfg.test_cfg.seeds) == seeds
        evaluator = cfg.test_evaluator
        assert list(evaluator.protocols) == list(cfg.metrics)
        if 'official' in cfg.metrics:
            assert evaluator.official_batch_size == {1: 96, 5: 48}[shot]
        assert 'official_num_classes' not in evaluator and 'class_names' not in evaluator  # from dataset_meta
    train = cfg.train_dataloader
    batch = stated_batch or (12 if shot == 1 else 6)
    assert train.batch_size == batch
    for scheduler in cfg.param_scheduler:
        if scheduler.type == 'MultiStepLR':
            assert scheduler.milestones == [24000 // batch // 3, 2 * (24000 // batch) // 3]
    adaptation = train.dataset.type == 'IFAAdaptationDataset'
    if adaptation:
        assert train.dataset.dataset == test_ds  # adaptation is on the evaluated target, with its facts
        labels = cfg.adaptation_labels
        if labels == 'pool':
            assert train.dataset.support_pool == 'standard' and list(train.dataset.eval_seeds) == seeds
            assert train.dataset.pool_file == os.path.join(cfg.work_dir, 'support_pool.json')
        elif labels == 'test_pool':
            assert train.dataset.support_pool == 'official'
    else:
        datasets.append(train.dataset)
    assert any(h.type == 'EpisodeResampleHook' for h in cfg.custom_hooks)
    if cfg.selection == 'last':
        assert cfg.get('val_dataloader') is None and cfg.get('val_evaluator') is None
        assert not cfg.default_hooks.checkpoint.get('save_best')
    else:
        val = cfg.val_dataloader
        datasets.append(val.dataset)
        assert val.batch_size == batch and val.dataset.seed == seeds[0]
        hook = cfg.default_hooks.checkpoint
        assert hook.type == 'FewShotCheckpointHook'
        if cfg.selection == 'target_test':
            assert {k: v for k, v in val.dataset.items() if k != 'seed'} == \
                {k: v for k, v in test_ds.items() if k != 'seed'}
            assert cfg.val_evaluator.protocols == ('official', ) and cfg.val_evaluator.official_batch_size == batch
            assert (hook.save_best, hook.rule) == ('official.mIoU', 'greater_equal')
            assert record['checkpoint_selected_on_test_set'] is True
        else:
            assert val.dataset.type == 'FSS1000Dataset' and val.dataset.split != cfg.fss_split
            assert (hook.save_best, hook.rule) == ('mIoU', 'greater')
    for ds in datasets:
        assert ds.data_root == cfg.data_root and ds.shot == shot, ds
    if cfg.get('source_config') and 'configs/ifa/' in cfg.source_config and not stated_load_from:
        assert f'pascal_source_{shot}shot' in cfg.source_config and f'pascal_source_{shot}shot' in cfg.load_from
    for key in ('data_root', 'shot', 'test_episodes', 'metrics', 'fss_split', 'selection', 'adaptation_labels'):
        assert record[key] == (list(cfg[key]) if key == 'metrics' else cfg[key])
    assert record['test_seeds'] == seeds


def applicable(cfg, key, value):
    """Overrides the resolver must refuse rather than follow, with the reason it gives."""
    adaptation = cfg.train_dataloader.dataset.type == 'IFAAdaptationDataset'
    target = cfg.get('test_dataloader', {}).get('dataset', {}).get('type')
    if key == 'selection' and value == 'target_test' and target is None:
        return 'needs a few-shot test_dataloader.dataset'
    if key == 'selection' and value == 'heldout' and adaptation and target != 'FSS1000Dataset':
        return 'has none'
    return None


@pytest.mark.parametrize('path', CONFIGS)
def test_shipped_config_resolves(path):
    cfg = Config.fromfile(os.path.join(ROOT, path))
    for key in ('data_root', 'shot', 'test_episodes', 'test_seeds', 'metrics', 'fss_split', 'selection',
                'adaptation_labels'):
        assert key in cfg, key  # every config exposes the facts and the four protocol keys
    cfg, record = resolved(path)
    check_derived(cfg, record, Config.fromfile(os.path.join(ROOT, path)).get('train_dataloader', {}).get('batch_size'))


@pytest.mark.parametrize('key', sorted(OVERRIDES))
@pytest.mark.parametrize('path', CONFIGS)
def test_single_key_override_reaches_everything(path, key):
    base = Config.fromfile(os.path.join(ROOT, path))
    value = OVERRIDES[key](base[key])
    if key == 'shot' and value == 5 and 'official' in base.metrics:
        pass  # the official batch is defined for 5-shot
    refusal = applicable(base, key, value)
    if refusal:
        with pytest.raises(ProtocolError, match=refusal):
            resolved(path, **{key: value})
        return
    cfg, record = resolved(path, **{key: value})
    assert cfg[key] == value or list(cfg[key]) == list(value)
    check_derived(cfg, record, base.get('train_dataloader', {}).get('batch_size'))


@pytest.mark.parametrize('path', CONFIGS)
def test_heldout_selection(path):
    """PATNet's rule: select on the FSS-1000 split that is not evaluated; refused where a target has none."""
    base = Config.fromfile(os.path.join(ROOT, path))
    refusal = applicable(base, 'selection', 'heldout')
    if refusal:
        with pytest.raises(ProtocolError, match=refusal):
            resolved(path, selection='heldout')
        return
    for fss_split in ('test', 'val'):
        cfg, record = resolved(path, selection='heldout', fss_split=fss_split)
        check_derived(cfg, record, base.get('train_dataloader', {}).get('batch_size'))
        assert record['selection_split'] == 'FSS1000Dataset:' + {'test': 'val', 'val': 'test'}[fss_split]
        # the selection set is read at the size the model trains at, masks by threshold
        scale = {t.type: t for t in cfg.val_dataloader.dataset.pipeline}
        trained = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline') or \
            cfg.train_dataloader.dataset.get('pipeline') or cfg.train_dataloader.dataset.dataset.pipeline
        assert scale['FewShotResize'].scale == {t.type: t for t in trained}['FewShotResize'].scale
        assert scale['LoadBinaryMask'].mode == 'threshold'


CONTRADICTIONS = [
    (dict(**{'test_dataloader.dataset.shot': 5}), 'test_dataloader.dataset.shot=5 contradicts shot=1'),
    (dict(**{'test_dataloader.dataset.num_episodes': 50}), 'test_dataloader.dataset.num_episodes=50 contradicts '
     'test_episodes=None'),
    (dict(**{'test_dataloader.dataset.data_root': 'x'}), "test_dataloader.dataset.data_root='x' contradicts "
     "data_root='data'"),
    (dict(**{'test_cfg.seeds': [0]}), r'test_cfg.seeds=\[0\] contradicts test_seeds=\(0, 1, 2, 3, 4\)'),
    (dict(**{'test_evaluator.official_batch_size': 64}), 'test_evaluator.official_batch_size=64 contradicts shot=1'),
    (dict(**{'test_evaluator.protocols': ['official']}), r"test_evaluator.protocols=\['official'\] contradicts "
     'metrics='),
    (dict(**{'train_dataloader.dataset.eval_seeds': [0]}), r'train_dataloader.dataset.eval_seeds=\[0\] contradicts '
     'test_seeds='),
    (dict(**{'train_dataloader.dataset.support_pool': 'official'}), "train_dataloader.dataset.support_pool="
     "'official' contradicts adaptation_labels='pool'"),
    (dict(**{'train_dataloader.dataset.dataset': dict(type='ISICDataset')}), 'train_dataloader.dataset.dataset='),
    (dict(**{'val_dataloader': dict(batch_size=2)}), "val_dataloader is stated but selection='last'"),
    (dict(selection='target_test', **{'default_hooks.checkpoint.save_best': 'mIoU'}),
     "default_hooks.checkpoint.save_best='mIoU' contradicts selection='target_test'"),
    (dict(shot=0), 'shot must be a whole number >= 1'),
    (dict(shot=3), "metrics includes 'official'"),
    (dict(test_episodes=0), 'test_episodes must be None'),
    (dict(test_seeds=[]), 'test_seeds must be a non-empty list'),
    (dict(test_seeds=[1, 1]), 'test_seeds repeats a seed'),
    (dict(test_seeds=[0, -1]), r'test_seeds must be a non-empty list of whole numbers >= 0 .*: \[-1\] is not one'),
    (dict(test_seeds=[True]), r'test_seeds must be .*, got \[True\]'),
    (dict(test_seeds=[0.5]), r'test_seeds must be .*, got \[0.5\]'),
    (dict(test_episodes=2.5), 'test_episodes must be None'),
    (dict(test_episodes=True), 'test_episodes must be None'),
    (dict(metrics=['standard', 'patnet']), "metrics must name 'standard' and/or 'official'"),
    (dict(selection='best'), 'selection must be one of'),
    (dict(adaptation_labels='online'), 'adaptation_labels must be one of'),
    (dict(adaptation_labels='episode', **{'test_dataloader.dataset.adapt_queries': 3}),
     'test_dataloader.dataset.adapt_queries=3 contradicts episode_adaptation='),
    (dict(adaptation_labels='episode', **{'model.test_cfg.episode_adaptation': dict(steps=1)}),
     'model.test_cfg.episode_adaptation=.* contradicts episode_adaptation='),
    (dict(**{'test_dataloader.dataset.adapt_queries': 4}),
     "test_dataloader.dataset.adapt_queries is stated but adaptation_labels='pool'"),
    (dict(**{'model.test_cfg.episode_adaptation': dict(steps=1)}),
     "model.test_cfg.episode_adaptation is stated but adaptation_labels='pool'"),
    (dict(adaptation_labels='episode', **{'episode_adaptation.steps': -1}), 'steps must be a whole number'),
    (dict(adaptation_labels='episode', **{'episode_adaptation.optimizer.type': 'LARS'}), "'LARS' is not one of"),
    (dict(fss_split='trn'), 'fss_split must be one of'),
]


@pytest.mark.parametrize('options,message', CONTRADICTIONS)
def test_contradictions_are_refused_naming_both_keys(options, message):
    with pytest.raises(ProtocolError, match=message):
        resolved('configs/ifa/deepglobe_1shot.py', **options)


def test_a_dataset_built_alone_refuses_a_negative_seed(tmp_path):
    """The seed is checked where the dataset reads it too (a dataset built without the resolver)."""
    from ifa_mmseg.datasets import DeepglobeDataset
    with pytest.raises(ValueError, match=r'seed \(the episode seed\) must be a whole number >= 0, got -1'):
        DeepglobeDataset(data_root=str(tmp_path), seed=-1)


def test_other_shots_keep_the_standard_metric():
    with pytest.raises(ProtocolError, match='pascal_source_3shot.py .* not found; set load_from'):
        resolved('configs/ifa/isic_1shot.py', shot=3, metrics=['standard'])
    cfg, record = resolved('configs/ifa/isic_1shot.py', shot=3, metrics=['standard'], load_from='source.pth')
    check_derived(cfg, record, None, 'source.pth')
    assert cfg.train_dataloader.batch_size == 6 and 'official_batch_size' not in record


def test_a_config_without_the_facts_is_refused(tmp_path):
    path = tmp_path / 'bare.py'
    path.write_text("train_dataloader = dict(dataset=dict(type='DeepglobeDataset'))\n")
    cfg = Config.fromfile(str(path))
    with pytest.raises(ProtocolError, match=r"lacks the top-level key\(s\) \['data_root', 'shot'"):
        resolve_protocol(cfg)


def test_resolution_is_idempotent():
    """The resolved config (dumped into the work dir and checkpoints) resolves to itself."""
    for path in ('configs/ifa/fss1000_5shot_official.py', 'configs/ifa/pascal_source_1shot_isic_official.py',
                 'configs/demo/deepglobe.py'):
        cfg, record = resolved(path)
        again = Config(cfg.to_dict(), filename=cfg.filename)
        assert resolve_protocol(again) == record
        assert again.to_dict() == cfg.to_dict()
