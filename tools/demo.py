"""CPU demo: synthetic data -> source training -> IFA adaptation -> evaluation, both protocols.

    python tools/demo.py [--work-dir work_dirs/demo] [--seed 0]

Writes the synthetic benchmark, trains the source model on the shape domain
(``configs/demo/source.py``) and evaluates three models on the held-out episodes of the
Deepglobe-like target (``configs/demo/deepglobe.py``, BatchNorm frozen during adaptation):

* source only: the source checkpoint;
* control (lr 0): the adaptation stage run with learning rate 0, everything else the same
  (same episodes, same support pool, same schedule): what the adaptation run itself does to
  the model without any weight update. With BatchNorm frozen it changes nothing, so it must
  equal source only to the last digit;
* IFA adapted: the adaptation stage with its learning rate;
* per-episode control (no step): the source checkpoint evaluated with
  ``adaptation_labels='episode'`` and no adaptation step, through the same route. Without a
  weight update the route gives the checkpoint's own prediction, so this costs one plain
  evaluation instead of a whole adaptation at learning rate 0, which gives the same numbers
  (``tests/test_episode_adaptation.py`` checks that the learning-rate-0 route equals it);
* per-episode adapted: the source checkpoint evaluated with ``adaptation_labels='episode'``:
  each test episode adapts its own copy of the weights on its own support only
  (``episode_adaptation`` of ``configs/demo/deepglobe.py``: the default recipe).

It prints the results side by side with each adaptation's gain over its control (the
method's part) and over source only, writes them to ``WORK_DIR/demo_results.json`` and
draws a few episodes (support with mask | query with ground truth | query with prediction)
of each model under ``WORK_DIR/vis/<model>/``. Each stage logs into its own work dir:
``source/`` (source training), ``source_only/`` (its evaluation), ``control/`` and
``adapted/`` (adaptation; their evaluation in ``test/`` below them), ``episode_control/``
and ``episode/``.
"""
import argparse
import copy
import json
import os.path as osp
import time
from typing import Dict

from mmengine.config import Config
from prettytable import PrettyTable

from ifa_mmseg.datasets.synthetic import make_synthetic_benchmark
from ifa_mmseg.engine import FewShotRunner
from ifa_mmseg.models.adaptation import episode_adaptation_settings
from ifa_mmseg.utils.cli import AMP_DTYPES, enable_amp

# relative to the repository (this file's folder's parent), so the demo runs from any directory
REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SOURCE_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'source.py')
TARGET_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'deepglobe.py')
REPORTED = ('mIoU', 'FBIoU', 'official.mIoU')
MODELS = (('source_only', 'source only'), ('control', 'control (lr 0)'), ('adapted', 'IFA adapted'),
          ('episode_control', 'per-episode control (no step)'), ('episode', 'per-episode adapted'))
# each adaptation and its learning-rate-0 control
GAINS = (('adapted', 'control', 'pool'), ('episode', 'episode_control', 'per-episode'))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='End-to-end IFA demo on synthetic data (CPU, minutes)')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seed', type=int, default=0, help='seed of the data, the training and the support pool')
    parser.add_argument('--num-vis', type=int, default=4, help='episode pictures per model')
    parser.add_argument('--quick', action='store_true',
                        help='a seconds-long smoke run (1 source epoch, 2 adaptation epochs, 1 seed of 24 episodes); '
                        'its numbers mean nothing')
    parser.add_argument('--amp', choices=AMP_DTYPES,
                        help='mixed precision training and evaluation (AmpOptimWrapper needs a GPU)')
    return parser.parse_args()


def stage_config(path: str, data_root: str, seed: int) -> Config:
    """``path`` with the demo's facts: its data root and seed (the resolver derives the rest)."""
    cfg = Config.fromfile(path)
    cfg.data_root = data_root
    cfg.randomness = dict(seed=seed)
    cfg.train_dataloader.dataset.seed = seed  # the source episodes, or the adaptation's episodes and support pool
    return cfg


def build_runner(cfg: Config, work_dir: str, name: str) -> FewShotRunner:
    """A runner of ``cfg`` that logs into ``work_dir`` only.

    mmengine shares a logger and visualizer between runners of the same name; the config's
    fixed visualizer name would send every stage's scalars to the first stage's log dir.
    """
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.experiment_name = name  # mmengine appends the timestamp
    cfg.visualizer.pop('name', None)  # then the visualizer takes the experiment name
    return FewShotRunner.from_cfg(cfg)


def adapt(target: Config, source_ckpt: str, work_dir: str, name: str, lr: float) -> str:
    """The adaptation stage from ``source_ckpt`` at learning rate ``lr``; returns its last checkpoint."""
    cfg = copy.deepcopy(target)
    cfg.load_from = source_ckpt
    cfg.optim_wrapper.optimizer.lr = lr
    build_runner(cfg, work_dir, name).train()
    return osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')


def per_episode(target: Config, adapt: bool) -> Config:
    """``target`` with ``adaptation_labels='episode'``; without ``adapt``, no adaptation step (the control).

    Each batch logs a progress line with the seed's ETA: this is the demo's longest evaluation.
    """
    cfg = copy.deepcopy(target)
    cfg.adaptation_labels = 'episode'
    if not adapt:
        cfg.episode_adaptation.steps = 0
    cfg.default_hooks.logger.interval = 1
    return cfg


def evaluate(target: Config, checkpoint: str, work_dir: str, name: str, show_dir: str,
             num_vis: int) -> Dict[str, float]:
    """Multi-seed test of ``checkpoint`` with ``target``'s test settings; draws ``num_vis`` episodes per seed."""
    cfg = copy.deepcopy(target)
    cfg.load_from = checkpoint
    cfg.default_hooks.visualization = dict(type='FewShotVisualizationHook', draw=True, num_episodes=num_vis,
                                           show_dir=osp.abspath(show_dir))
    return build_runner(cfg, work_dir, name).test()


def main() -> None:
    args = parse_args()
    start = time.time()
    data_root = osp.join(args.work_dir, 'data')
    make_synthetic_benchmark(data_root, seed=args.seed, size=96, images_per_class=8 if args.quick else 24,
                             num_tiles=36 if args.quick else 120)

    source = stage_config(SOURCE_CONFIG, data_root, args.seed)
    target = stage_config(TARGET_CONFIG, data_root, args.seed)
    if args.amp:
        enable_amp(source, args.amp)
        enable_amp(target, args.amp)
    if args.quick:
        source.train_cfg.max_epochs = 1
        target.train_cfg.max_epochs = 2
        target.test_seeds = (0, )
        target.test_episodes = 24
        target.episode_adaptation.steps = 1
    seconds: Dict[str, float] = {}

    def timed(stage: str, fn, *fn_args):
        t = time.time()
        out = fn(*fn_args)
        seconds[stage] = round(time.time() - t, 1)
        return out

    source_dir = osp.join(args.work_dir, 'source')
    timed('source_training', lambda: build_runner(source, source_dir, 'source').train())
    source_ckpt = osp.join(source_dir, f'epoch_{source.train_cfg.max_epochs}.pth')
    lr = target.optim_wrapper.optimizer.lr

    def vis(model: str) -> str:
        return osp.join(args.work_dir, 'vis', model)

    results = dict(source_only=timed('source_only_test', evaluate, target, source_ckpt,
                                     osp.join(args.work_dir, 'source_only'), 'source_only_test', vis('source_only'),
                                     args.num_vis))
    for model, model_lr in (('control', 0.0), ('adapted', lr)):
        work_dir = osp.join(args.work_dir, model)
        ckpt = timed(f'{model}_adaptation', adapt, target, source_ckpt, work_dir, model, model_lr)
        results[model] = timed(f'{model}_test', evaluate, target, ckpt, osp.join(work_dir, 'test'),
                               f'{model}_test', vis(model), args.num_vis)

    for model, adapt_episode in (('episode_control', False), ('episode', True)):
        results[model] = timed(f'{model}_test', evaluate, per_episode(target, adapt_episode), source_ckpt,
                               osp.join(args.work_dir, model), f'{model}_test', vis(model), args.num_vis)

    before, control, after = results['source_only'], results['control'], results['adapted']
    table = PrettyTable(['metric (Deepglobe-like, held-out episodes)', *(title for _, title in MODELS),
                         *(f'{name}: gain over control' for _, _, name in GAINS),
                         *(f'{name}: gain over source only' for _, _, name in GAINS)])
    for key in REPORTED:
        table.add_row([key, *(f'{results[m][key]:.2f} ± {results[m][key + "_ci95"]:.2f}' for m, _ in MODELS),
                       *(f'{results[a][key] - results[c][key]:+.2f}' for a, c, _ in GAINS),
                       *(f'{results[a][key] - before[key]:+.2f}' for a, _, _ in GAINS)])
    print(table.get_string())
    same = all(control[k] == before[k] for k in before if isinstance(before[k], (int, float)))
    print('control (lr 0) equals source only to the last digit: the adaptation run changes nothing but the weights'
          if same else 'WARNING: control (lr 0) differs from source only: something other than the weight updates '
          '(e.g. BatchNorm statistics) changes the model during adaptation')
    drift = max(abs(results['episode_control'][k] - before[k]) for k in REPORTED)
    print(f'per-episode control (no step) vs source only: largest metric difference {drift:.4f} (the same weights '
          'through the per-episode route; float rounding can flip a few pixels)')
    summary = dict(seed=args.seed, amp=args.amp, quick=args.quick, adaptation_lr=lr,
                   episode_adaptation=episode_adaptation_settings(target.episode_adaptation.to_dict()), **results,
                   gain_over_control={k: after[k] - control[k] for k in REPORTED},
                   gain_over_source_only={k: after[k] - before[k] for k in REPORTED},
                   episode_gain_over_control={k: results['episode'][k] - results['episode_control'][k]
                                              for k in REPORTED},
                   episode_gain_over_source_only={k: results['episode'][k] - before[k] for k in REPORTED},
                   control_equals_source_only=same,
                   episode_control_minus_source_only={k: results['episode_control'][k] - before[k] for k in REPORTED},
                   stage_seconds=seconds, seconds=round(time.time() - start, 1))
    with open(osp.join(args.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print(f'demo finished in {summary["seconds"]:.0f} s; pictures in {osp.join(args.work_dir, "vis")}')


if __name__ == '__main__':
    main()
