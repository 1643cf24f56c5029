"""The run's facts and evaluation protocol, stated once at the top of a config and resolved here.

A config states eight top-level keys (``configs/_base_/default_runtime.py`` holds their
defaults): the facts ``data_root``, ``shot``, ``test_episodes``, ``test_seeds`` and the
protocol ``metrics``, ``fss_split``, ``selection``, ``adaptation_labels`` (plus
``episode_sampling``, which only decides how the random episodes are drawn).
:func:`resolve_protocol` writes everything that depends on them into the config
(dataset arguments, batch sizes, the official metric's batch, LR milestones, the
adaptation dataset and its exclusion set, the selection loop and checkpoint rule,
``load_from``) and refuses, naming both keys, a config that states a dependent value
that disagrees.

:func:`resolve_config` is the one entry point: every consumer builds from the config it
returns. :class:`~ifa_mmseg.engine.FewShotRunner` (our tools, and mmseg's ``tools/train.py``
through ``runner_type``), :class:`~ifa_mmseg.engine.MultiSeedTestLoop` under a plain Runner
(mmseg's ``tools/test.py``, which ignores ``runner_type``), :func:`ifa_mmseg.apis.init_model`,
:class:`~ifa_mmseg.apis.FewShotInferencer` and the tools. What a consumer needs of the
resolved config it reads through the accessors here (:func:`evaluated_dataset`,
:func:`episode_pipeline_of`), and which stage a protocol runs :func:`check_stage` decides.
"""
import copy
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

from mmengine.config import Config, ConfigDict
from mmengine.dist import is_main_process
from mmseg.registry import DATASETS

from ..utils.errors import ProtocolError
from ..utils.validation import is_whole

FACTS = ('data_root', 'shot', 'test_episodes', 'test_seeds')
PROTOCOL_CHOICES: Dict[str, tuple] = dict(
    metrics=('standard', 'official'),
    fss_split=('test', 'val'),
    selection=('last', 'heldout', 'target_test'),
    adaptation_labels=('none', 'pool', 'test_pool', 'episode'),
    episode_sampling=('standard', 'official'),
)
PROTOCOL_KEYS = ('metrics', 'fss_split', 'selection', 'adaptation_labels')
# IFAAdaptationDataset's name for each labelled-support source
SUPPORT_POOLS = dict(pool='standard', test_pool='official')
# the official test.py batch in all.sh, per shot; the official metric depends on it
OFFICIAL_TEST_BATCH = {1: 96, 5: 48}
ADAPTATION_DATASET = 'IFAAdaptationDataset'
FSS_DATASET = 'FSS1000Dataset'


def official_train_batch(shot: int) -> int:
    """Episodes per training batch in the official scripts: 12 for 1-shot, 6 for more shots."""
    return 12 if shot == 1 else 6


def official_milestones(batch_size: int) -> List[int]:
    """LR decay iterations of the official ``train.py``/``ifa.py``: thirds of ``24000 // batch``."""
    total = 24000 // batch_size
    return [total // 3, 2 * total // 3]


def heldout_fss_split(fss_split: str) -> str:
    """The FSS-1000 split that selection may use: the one that is not evaluated (PATNet: ``val``)."""
    return 'val' if fss_split == 'test' else 'test'


def _is_fewshot(dataset: Any) -> bool:
    from ..datasets.base_fewshot import BaseFewShotDataset
    cls = DATASETS.get(dataset.get('type')) if isinstance(dataset, dict) and 'type' in dataset else None
    return isinstance(cls, type) and issubclass(cls, BaseFewShotDataset)


class _Resolver:
    """Applies the facts to one config; ``agree`` fills a dependent value or refuses a contradiction."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        missing = [k for k in (*FACTS, *PROTOCOL_KEYS, 'episode_sampling') if k not in cfg]
        if missing:
            raise ProtocolError(f'{cfg.filename}: the config lacks the top-level key(s) {missing}; inherit '
                                'configs/_base_/default_runtime.py, which states them with their defaults')
        self.facts = {k: cfg[k] for k in (*FACTS, *PROTOCOL_KEYS, 'episode_sampling')}
        self._validate()

    # ------------------------------------------------------------ validation
    def _validate(self) -> None:
        f = self.facts
        if not isinstance(f['data_root'], str) or not f['data_root']:
            raise ProtocolError(f'data_root must be a folder path, got {f["data_root"]!r}')
        if not is_whole(f['shot']) or f['shot'] < 1:
            raise ProtocolError(f'shot must be a whole number >= 1, got {f["shot"]!r}')
        episodes = f['test_episodes']
        if episodes is not None and (not is_whole(episodes) or episodes <= 0):
            raise ProtocolError(f'test_episodes must be None (the dataset default) or a whole number > 0, '
                                f'got {episodes!r}')
        seeds = f['test_seeds']
        if is_whole(seeds) or not seeds or not all(is_whole(s) and s >= 0 for s in seeds):
            bad = [s for s in seeds if not (is_whole(s) and s >= 0)] if isinstance(seeds, (list, tuple)) else seeds
            raise ProtocolError(f'test_seeds must be a non-empty list of whole numbers >= 0 (numpy seeds), got '
                                f'{seeds!r}' + (f': {bad!r} is not one' if bad != seeds else ''))
        if len(set(seeds)) != len(seeds):
            raise ProtocolError(f'test_seeds repeats a seed: {list(seeds)}')
        f['test_seeds'] = tuple(seeds)
        metrics = (f['metrics'], ) if isinstance(f['metrics'], str) else tuple(f['metrics'])
        if not metrics or set(metrics) - set(PROTOCOL_CHOICES['metrics']):
            raise ProtocolError(f"metrics must name 'standard' and/or 'official', got {f['metrics']!r}")
        f['metrics'] = metrics
        for key in ('fss_split', 'selection', 'adaptation_labels', 'episode_sampling'):
            if f[key] not in PROTOCOL_CHOICES[key]:
                raise ProtocolError(f'{key} must be one of {PROTOCOL_CHOICES[key]}, got {f[key]!r}')
        if 'official' in metrics and f['shot'] not in OFFICIAL_TEST_BATCH:
            raise ProtocolError(f"metrics includes 'official', whose batch is defined for shot 1 or 5 only "
                                f"(all.sh), got shot={f['shot']}; set metrics=['standard']")
        for key, value in (('shot', f['shot']), ('test_seeds', f['test_seeds']), ('metrics', metrics)):
            self.cfg[key] = value

    # ------------------------------------------------------------- helpers
    def agree(self, node: dict, key: str, value: Any, where: str, fact: str) -> None:
        """``node[key] = value``, unless the config already states another value there."""
        if key in node and not _same(node[key], value):
            raise ProtocolError(
                f'{where}.{key}={_short(node[key])} contradicts {fact}={_short(self.facts.get(fact, value))}: '
                f'{where}.{key} is derived from {fact}; change {fact} (e.g. --cfg-options {fact}=...) and do '
                f'not set {where}.{key}')
        node[key] = value

    # -------------------------------------------------------------- datasets
    def target_dataset(self, dataset: dict, where: str, seed: int) -> None:
        """The facts of a target (evaluated) dataset: root, shot, episodes, sampling, seed, FSS split."""
        f = self.facts
        self.agree(dataset, 'data_root', f['data_root'], where, 'data_root')
        self.agree(dataset, 'shot', f['shot'], where, 'shot')
        if f['test_episodes'] is None:
            if dataset.get('num_episodes') is not None:
                raise ProtocolError(f'{where}.num_episodes={dataset["num_episodes"]!r} contradicts '
                                    'test_episodes=None (the dataset default); set test_episodes instead')
        else:
            self.agree(dataset, 'num_episodes', f['test_episodes'], where, 'test_episodes')
        self.agree(dataset, 'episode_sampling', f['episode_sampling'], where, 'episode_sampling')
        self.agree(dataset, 'seed', seed, where, 'test_seeds')
        if dataset.get('type') == FSS_DATASET:
            self.agree(dataset, 'split', f['fss_split'], where, 'fss_split')

    def source_dataset(self, dataset: dict, where: str) -> None:
        self.agree(dataset, 'data_root', self.facts['data_root'], where, 'data_root')
        self.agree(dataset, 'shot', self.facts['shot'], where, 'shot')


def _same(a: Any, b: Any) -> bool:
    """Equal as config values (a tuple and a list with the same items are)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value.to_dict() if isinstance(value, ConfigDict) else value)
    return text if len(text) <= limit else text[:limit] + '...'


def _source_checkpoint(source_config: str, shot: int, config_file: str) -> str:
    """The checkpoint a source config's run ends with: ``best.pth`` when it selects, else the last epoch.

    ``source_config`` is relative to the working directory or to the folder holding the
    ``configs/`` tree of ``config_file``; ``work_dirs/`` is relative to the working directory.
    """
    path = source_config.format(shot=shot)
    project = config_file.rsplit(osp.sep + 'configs' + osp.sep, 1)[0] if config_file else ''
    found = next((p for p in (path, osp.join(project, path)) if osp.isfile(p)), None)
    if found is None:
        raise ProtocolError(f'source_config {path} (from {source_config!r} with shot={shot}) not found; set '
                            'load_from to the checkpoint to start from')
    source = Config.fromfile(found)
    work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    if source.get('selection', 'last') != 'last':
        return osp.join(work_dir, 'best.pth')
    return osp.join(work_dir, f'epoch_{source.train_cfg.max_epochs}.pth')


def resolve_protocol(cfg: Config) -> Dict[str, Any]:
    """Write every value that depends on the config's facts and protocol keys into ``cfg``.

    Returns:
        The resolved record (what ``protocol.json`` holds, before the datasets are built).

    Raises:
        ProtocolError: a key is missing or invalid, or a stated dependent value
            contradicts its fact (the message names both keys).
    """
    r = _Resolver(cfg)
    f = r.facts
    record: Dict[str, Any] = {k: f[k] for k in (*FACTS, *PROTOCOL_KEYS, 'episode_sampling')}
    record['test_seeds'], record['metrics'] = list(f['test_seeds']), list(f['metrics'])

    test_loader = cfg.get('test_dataloader')
    test_ds = test_loader.get('dataset') if test_loader else None
    if test_ds is not None and _is_fewshot(test_ds):
        r.target_dataset(test_ds, 'test_dataloader.dataset', f['test_seeds'][0])
    elif test_ds is not None and f['selection'] == 'target_test':
        raise ProtocolError("selection='target_test' needs a few-shot target test_dataloader.dataset")
    if cfg.get('test_cfg', {}).get('type') == 'MultiSeedTestLoop':
        r.agree(cfg.test_cfg, 'seeds', f['test_seeds'], 'test_cfg', 'test_seeds')
    evaluators = cfg.get('test_evaluator') or []
    for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
        if evaluator.get('type') != 'FewShotIoUMetric':
            continue
        r.agree(evaluator, 'protocols', f['metrics'], 'test_evaluator', 'metrics')
        if 'official' in f['metrics']:
            r.agree(evaluator, 'official_batch_size', OFFICIAL_TEST_BATCH[f['shot']], 'test_evaluator', 'shot')
            record['official_batch_size'] = OFFICIAL_TEST_BATCH[f['shot']]

    _resolve_episode_adaptation(r, cfg, test_ds, record)

    train_loader = cfg.get('train_dataloader')
    stage = 'test'
    if train_loader is not None:
        stage = _resolve_training(r, cfg, train_loader, test_ds, record)
    record['stage'] = stage
    _resolve_selection(r, cfg, stage, test_ds, record)
    record['checkpoint_selected_on_test_set'] = f['selection'] == 'target_test'

    if cfg.get('load_from') is None and cfg.get('source_config'):
        cfg.load_from = _source_checkpoint(cfg.source_config, f['shot'], cfg.filename or '')
    if cfg.get('source_config'):
        cfg.source_config = cfg.source_config.format(shot=f['shot'])
    record['load_from'] = cfg.get('load_from')
    cfg.protocol = copy.deepcopy(record)
    return record


def resolve_config(cfg: Union[str, Config], cfg_options: Optional[dict] = None) -> Config:
    """The config every consumer builds from: a resolved copy of ``cfg`` (a file or a :class:`Config`).

    Resolution is idempotent, so a config that was already resolved (e.g. the one a run
    dumps into its work dir) resolves to itself.

    Args:
        cfg: the config, or its file.
        cfg_options: overrides merged before resolving (``--cfg-options``).

    Returns:
        The resolved config; its ``protocol`` key holds the record (:func:`resolve_protocol`).

    Raises:
        ProtocolError: see :func:`resolve_protocol`.
    """
    cfg = Config.fromfile(cfg) if isinstance(cfg, str) else copy.deepcopy(cfg)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    resolve_protocol(cfg)
    return cfg


def check_stage(record: Dict[str, Any], mode: str) -> None:
    """Refuse to run ``mode`` (``'train'`` or ``'test'``) of a config whose protocol has no such stage.

    Raises:
        ProtocolError: naming what to run instead.
    """
    if mode != 'train' or record.get('stage') != 'adaptation':
        return
    if record.get('adaptation_labels') == 'none':
        raise ProtocolError("adaptation_labels='none' has no adaptation stage: evaluate the source "
                            'checkpoint directly with tools/test.py CONFIG CHECKPOINT')
    if record.get('adaptation_labels') == 'episode':
        raise ProtocolError("adaptation_labels='episode' adapts each test episode at test time and has no "
                            'adaptation stage to train: run tools/test.py CONFIG SOURCE_CHECKPOINT '
                            "--cfg-options adaptation_labels=episode")


def evaluated_dataset(cfg: Config) -> dict:
    """The config of the dataset a resolved config evaluates: its test dataset, or for a source config
    without one its training dataset (inside any dataset wrapper).

    Raises:
        ValueError: the config has neither.
    """
    loader = cfg.get('test_dataloader') or cfg.get('train_dataloader')
    dataset = loader.get('dataset') if loader else None
    while dataset is not None and 'pipeline' not in dataset:  # dataset wrappers (IFAAdaptationDataset)
        dataset = dataset.get('dataset')
    if dataset is None:
        raise ValueError(f'{cfg.filename}: no test_dataloader (or train_dataloader) dataset with a pipeline')
    return dataset


def episode_pipeline_of(cfg: Config) -> List[dict]:
    """The per-image pipeline of :func:`evaluated_dataset` (what inference and the tools preprocess with)."""
    return evaluated_dataset(cfg)['pipeline']


def _resolve_training(r: _Resolver, cfg: Config, loader: dict, test_ds: Optional[dict],
                      record: Dict[str, Any]) -> str:
    """Batch size, milestones, the training dataset(s) and the epoch hook; returns the stage."""
    f = r.facts
    dataset = loader.get('dataset', {})
    adaptation = dataset.get('type') == ADAPTATION_DATASET
    if adaptation:
        if test_ds is None:
            raise ProtocolError('IFA adaptation adapts to the target of test_dataloader.dataset, which is missing')
        # adaptation is on the target that is evaluated: its dataset is the test dataset
        r.agree(dataset, 'dataset', copy.deepcopy(test_ds), 'train_dataloader.dataset', 'test_dataloader.dataset')
        if f['adaptation_labels'] in SUPPORT_POOLS:
            r.agree(dataset, 'support_pool', SUPPORT_POOLS[f['adaptation_labels']], 'train_dataloader.dataset',
                    'adaptation_labels')
        if f['adaptation_labels'] == 'pool':
            r.agree(dataset, 'eval_seeds', f['test_seeds'], 'train_dataloader.dataset', 'test_seeds')
            if dataset.get('pool_file') is None and cfg.get('work_dir'):
                dataset['pool_file'] = osp.join(cfg.work_dir, 'support_pool.json')
        if dataset.get('pool_dataset') is not None:
            r.source_dataset(dataset['pool_dataset'], 'train_dataloader.dataset.pool_dataset')
    elif _is_fewshot(dataset):
        r.source_dataset(dataset, 'train_dataloader.dataset')
    stage = 'adaptation' if adaptation else 'source'
    loader.setdefault('batch_size', official_train_batch(f['shot']))
    record['train_batch_size'] = loader['batch_size']
    for scheduler in cfg.get('param_scheduler') or []:
        if scheduler.get('type') == 'MultiStepLR':
            scheduler.setdefault('milestones', official_milestones(loader['batch_size']))
            record['milestones'] = list(scheduler['milestones'])
    if (_is_fewshot(dataset) or adaptation) and not any(
            h.get('type') == 'EpisodeResampleHook' for h in cfg.get('custom_hooks') or []):
        raise ProtocolError('train_dataloader.dataset draws episodes per epoch but custom_hooks has no '
                            "EpisodeResampleHook, so every epoch would repeat the first one's draws: add "
                            "dict(type='EpisodeResampleHook') (configs/_base_/schedules/source_20e.py states it)")
    return stage


def _resolve_episode_adaptation(r: _Resolver, cfg: Config, test_ds: Optional[dict], record: Dict[str, Any]) -> None:
    """``adaptation_labels='episode'`` owns the test dataset's pseudo-queries and the model's test-time adaptation."""
    from ..models.adaptation import EpisodeAdapter, episode_adaptation_settings
    episode = r.facts['adaptation_labels'] == 'episode'
    test_cfg = (cfg.get('model') or {}).get('test_cfg') or {}
    if not episode:
        stated = [where for where, present in (
            ('test_dataloader.dataset.adapt_queries', bool(test_ds and test_ds.get('adapt_queries'))),
            ('model.test_cfg.episode_adaptation', bool(test_cfg.get('episode_adaptation')))) if present]
        if stated:
            raise ProtocolError(f'{stated[0]} is stated but adaptation_labels={r.facts["adaptation_labels"]!r} '
                                "does not adapt per episode: set adaptation_labels='episode' and state the "
                                'settings in episode_adaptation')
        return
    if test_ds is None or not _is_fewshot(test_ds):
        raise ProtocolError("adaptation_labels='episode' adapts the model on each test episode's supports: the "
                            'config needs a few-shot test_dataloader.dataset (add ../_base_/datasets/<target>.py)')
    settings = cfg.get('episode_adaptation')
    if not settings:
        raise ProtocolError("adaptation_labels='episode' needs the top-level episode_adaptation settings "
                            '(configs/_base_/default_runtime.py states them)')
    try:
        adapter = EpisodeAdapter.from_settings(settings)
    except (TypeError, ValueError) as e:
        raise ProtocolError(f'episode_adaptation: {e}') from e
    r.agree(test_ds, 'adapt_queries', adapter.num_queries, 'test_dataloader.dataset', 'episode_adaptation')
    if cfg.get('model') is not None:
        cfg.model.test_cfg = test_cfg
        r.agree(test_cfg, 'episode_adaptation', copy.deepcopy(settings), 'model.test_cfg', 'episode_adaptation')
    record['episode_adaptation'] = episode_adaptation_settings(settings.to_dict() if isinstance(settings, ConfigDict)
                                                               else settings)


def _resolve_selection(r: _Resolver, cfg: Config, stage: str, test_ds: Optional[dict],
                       record: Dict[str, Any]) -> None:
    """``selection`` owns the validation loop and the checkpoint rule."""
    f = r.facts
    if f['selection'] == 'last' or stage == 'test':
        for key in ('val_dataloader', 'val_evaluator', 'val_cfg'):
            if stage != 'test' and cfg.get(key) is not None:
                raise ProtocolError(f"{key} is stated but selection='last' validates nothing; remove {key} "
                                    "(selection='heldout' or 'target_test' derives it)")
        return
    train_batch = cfg.train_dataloader.batch_size
    if f['selection'] == 'target_test':
        if test_ds is None or not _is_fewshot(test_ds):
            raise ProtocolError("selection='target_test' selects on the target's test episodes: the config "
                                'needs a few-shot test_dataloader.dataset (add ../_base_/datasets/<target>.py)')
        val_ds = copy.deepcopy(test_ds)
        evaluator = dict(type='FewShotIoUMetric', protocols=('official', ), official_batch_size=train_batch)
        save_best, rule = 'official.mIoU', 'greater_equal'
        record['selection_official_batch_size'] = train_batch
        if stage == 'source':
            cfg.train_cfg.setdefault('val_begin', 3)  # train.py keeps only epochs >= 2 (0-based)
    else:
        fss_target = test_ds is not None and test_ds.get('type') == FSS_DATASET
        if stage == 'adaptation' and not fss_target:
            raise ProtocolError(f"selection='heldout' needs a split that is not evaluated; "
                                f"{test_ds.get('type')} has none (FSS-1000 has val/test): use selection='last'")
        pipeline = test_ds.get('pipeline') if test_ds is not None else _threshold_pipeline(cfg)
        val_ds = dict(type=FSS_DATASET, data_root=f['data_root'], shot=f['shot'], seed=f['test_seeds'][0],
                      episode_sampling=f['episode_sampling'], pipeline=pipeline)
        val_ds['split'] = heldout_fss_split(f['fss_split'])
        if fss_target and test_ds.get('num_episodes') is not None:
            val_ds['num_episodes'] = test_ds['num_episodes']
        evaluator = dict(type='FewShotIoUMetric', protocols=('standard', ))
        save_best, rule = 'mIoU', 'greater'
        record['selection_split'] = f'{FSS_DATASET}:{val_ds["split"]}'
    val_ds['seed'] = f['test_seeds'][0]
    loader = copy.deepcopy(cfg.get('test_dataloader') or dict(
        num_workers=2, persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='fewshot_collate')))
    loader.update(batch_size=train_batch, dataset=val_ds)
    for key, value in (('val_dataloader', loader), ('val_evaluator', evaluator), ('val_cfg', dict(type='ValLoop'))):
        if cfg.get(key) is not None and not _same(cfg[key], value):
            raise ProtocolError(f'{key} is derived from selection={f["selection"]!r}; remove it from the config')
        cfg[key] = value
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    if hook.get('type') != 'FewShotCheckpointHook':
        raise ProtocolError(f"selection={f['selection']!r} keeps the best checkpoint by the official rule, which "
                            f"default_hooks.checkpoint of type {hook.get('type')!r} cannot apply: use "
                            "dict(type='FewShotCheckpointHook') (configs/_base_/schedules/source_20e.py states it)")
    for key, value in (('save_best', save_best), ('rule', rule)):
        r.agree(hook, key, value, 'default_hooks.checkpoint', 'selection')


def _threshold_pipeline(cfg: Config) -> Optional[list]:
    """The source training pipeline with its masks read by threshold, for an FSS-1000 selection set: the
    model's input size stays the one it trains at (e.g. 392 for ViT/14)."""
    pipeline = cfg.train_dataloader.get('dataset', {}).get('pipeline')
    if pipeline is None:
        return None
    return [dict(t, mode='threshold') if t.get('type') == 'LoadBinaryMask' else t for t in copy.deepcopy(pipeline)]


def selection_note(record: Optional[Dict[str, Any]]) -> Optional[str]:
    """The warning every log and result of a test-set-selected checkpoint carries, else ``None``."""
    if record and record.get('selection') == 'target_test':
        return ("checkpoint selected on the test set (selection='target_test', the official IFA rule): "
                'these numbers carry that selection')
    return None


def protocol_summary(record: Dict[str, Any], keys: Sequence[str] = (*FACTS, *PROTOCOL_KEYS)) -> str:
    """One log line of the record's facts and protocol keys."""
    return ', '.join(f'{k}={record.get(k)!r}' for k in keys)


def write_protocol(work_dir: str, record: Dict[str, Any]) -> None:
    """``work_dir/protocol.json`` (main process only): what a run resolved and what its datasets report."""
    if not is_main_process():
        return
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'protocol.json'), 'w') as f:
        json.dump(record, f, indent=1, default=lambda v: list(v) if isinstance(v, (tuple, set)) else str(v))
