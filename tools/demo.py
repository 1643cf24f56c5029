"""CPU demo: synthetic data -> source training -> IFA adaptation -> evaluation, both protocols.

    python tools/demo.py [--work-dir work_dirs/demo] [--seed 0]

Writes the synthetic benchmark, trains the source model on the shape domain
(``configs/demo/source.py``), evaluates it on the held-out episodes of the
Deepglobe-like target, adapts it with IFA on the standard support pool
(``configs/demo/deepglobe.py``), evaluates again, prints both results side by side and
draws a few episodes (support with mask | query with ground truth | query with
prediction) of each model.
"""
import argparse
import json
import os.path as osp
import time
from typing import Dict

from mmengine.config import Config
from mmengine.runner import Runner
from prettytable import PrettyTable

from ifa_mmseg.datasets.synthetic import make_synthetic_benchmark
from ifa_mmseg.utils.cli import AMP_DTYPES, enable_amp

SOURCE_CONFIG = 'configs/demo/source.py'
TARGET_CONFIG = 'configs/demo/deepglobe.py'
REPORTED = ('mIoU', 'FBIoU', 'official.mIoU')


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


def stage_config(path: str, work_dir: str, data_root: str, seed: int) -> Config:
    """``path`` with the demo's folders and seed."""
    cfg = Config.fromfile(path)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    train = cfg.train_dataloader.dataset
    if train.type == 'IFAAdaptationDataset':
        train.seed = seed
        train.dataset.data_root = data_root
    else:
        train.data_root = data_root
        train.seed = seed
    if 'test_dataloader' in cfg:
        cfg.test_dataloader.dataset.data_root = data_root
    return cfg


def evaluate(cfg: Config, checkpoint: str, show_dir: str, num_vis: int) -> Dict[str, float]:
    """Multi-seed test of ``checkpoint`` with ``cfg``'s test settings; draws ``num_vis`` episodes per seed."""
    cfg = cfg.copy()
    cfg.load_from = checkpoint
    cfg.default_hooks.visualization = dict(type='FewShotVisualizationHook', draw=True, num_episodes=num_vis,
                                           show_dir=osp.abspath(show_dir))
    return Runner.from_cfg(cfg).test()


def main() -> None:
    args = parse_args()
    start = time.time()
    data_root = osp.join(args.work_dir, 'data')
    make_synthetic_benchmark(data_root, seed=args.seed, size=96, images_per_class=8 if args.quick else 24,
                             num_tiles=36 if args.quick else 120)

    source = stage_config(SOURCE_CONFIG, osp.join(args.work_dir, 'source'), data_root, args.seed)
    target = stage_config(TARGET_CONFIG, osp.join(args.work_dir, 'deepglobe'), data_root, args.seed)
    if args.amp:
        enable_amp(source, args.amp)
        enable_amp(target, args.amp)
    if args.quick:
        source.train_cfg.max_epochs = 1
        target.train_cfg.max_epochs = 2
        target.test_cfg.seeds = (0, )
        target.test_dataloader.dataset.num_episodes = 24
    Runner.from_cfg(source).train()
    source_ckpt = osp.join(source.work_dir, f'epoch_{source.train_cfg.max_epochs}.pth')

    target.train_dataloader.dataset.pool_file = osp.join(target.work_dir, 'support_pool.json')
    target.train_dataloader.dataset.eval_seeds = target.test_cfg.seeds  # held out from every evaluated query
    before = evaluate(target, source_ckpt, osp.join(args.work_dir, 'vis', 'source_only'), args.num_vis)
    target.load_from = source_ckpt
    Runner.from_cfg(target).train()
    adapted_ckpt = osp.join(target.work_dir, f'epoch_{target.train_cfg.max_epochs}.pth')
    after = evaluate(target, adapted_ckpt, osp.join(args.work_dir, 'vis', 'adapted'), args.num_vis)

    table = PrettyTable(['metric (Deepglobe-like, held-out episodes)', 'source only', 'IFA adapted', 'gain'])
    for key in REPORTED:
        table.add_row([key, f'{before[key]:.2f} ± {before[key + "_ci95"]:.2f}',
                       f'{after[key]:.2f} ± {after[key + "_ci95"]:.2f}', f'{after[key] - before[key]:+.2f}'])
    print(table.get_string())
    summary = dict(seed=args.seed, amp=args.amp, source_only=before, adapted=after,
                   seconds=round(time.time() - start, 1))
    with open(osp.join(args.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print(f'demo finished in {summary["seconds"]:.0f} s; pictures in {osp.join(args.work_dir, "vis")}')


if __name__ == '__main__':
    main()
