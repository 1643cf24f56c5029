"""Sweep the per-episode adaptation settings (steps x learning rate) of a config on a checkpoint.

    python tools/analysis_tools/episode_adaptation_sweep.py CONFIG CHECKPOINT \
        --steps 5 10 20 --lr 5e-4 2e-3 1e-2 --cfg-options data_root=HELD_OUT_DATA

Runs ``adaptation_labels='episode'`` once per (steps, lr) pair, plus once with no step
(the checkpoint itself through the same route), over the config's test seeds, and prints
the table of mean mIoU / FBIoU with their 95% intervals over seeds, best mIoU marked.
It writes the table to ``WORK_DIR/sweep.json``.

Choose settings on data that is not evaluated afterwards (e.g. ``data_root`` of a
held-out split, or another FSS-1000 split): a setting chosen on the test episodes
carries that selection in its numbers.
"""
import argparse
import copy
import json
import os.path as osp
import time
from typing import Dict, List

from prettytable import PrettyTable

from ifa_mmseg.utils import add_common_args, build_runner, load_config

REPORTED = ('mIoU', 'FBIoU')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Sweep steps x lr of per-episode adaptation')
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='the checkpoint every episode adapts from (a source model)')
    parser.add_argument('--steps', type=int, nargs='+', required=True, help='optimizer steps per episode')
    parser.add_argument('--lr', type=float, nargs='+', required=True, help='learning rates')
    add_common_args(parser)
    return parser.parse_args()


def run_one(cfg, steps: int, lr: float, work_dir: str) -> Dict[str, float]:
    """The multi-seed test of ``cfg`` with per-episode adaptation of ``steps`` steps at ``lr``."""
    cfg = copy.deepcopy(cfg)
    cfg.adaptation_labels = 'episode'
    cfg.episode_adaptation.steps = steps
    cfg.episode_adaptation.optimizer.lr = lr
    cfg.work_dir = work_dir
    cfg.experiment_name = osp.basename(work_dir)
    cfg.visualizer.pop('name', None)  # one visualizer (and log dir) per run
    return build_runner(cfg).test()


def main() -> None:
    args = parse_args()
    if min(args.steps) < 1 or min(args.lr) <= 0:
        raise SystemExit('--steps must be >= 1 and --lr > 0 (the no-step run is always added)')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    grid = [(0, 0.0)] + [(s, lr) for s in args.steps for lr in args.lr]
    rows: List[dict] = []
    for steps, lr in grid:
        start = time.time()
        metrics = run_one(cfg, steps, lr, osp.join(cfg.work_dir, f'steps{steps}_lr{lr:g}'))
        rows.append(dict(steps=steps, lr=lr, seconds=round(time.time() - start, 1),
                         **{k: metrics[k] for k in REPORTED}, **{f'{k}_ci95': metrics[f'{k}_ci95'] for k in REPORTED}))
    best = max(rows[1:], key=lambda r: r['mIoU'])
    table = PrettyTable(['steps', 'lr', *REPORTED, 'seconds', ''])
    for row in rows:
        table.add_row([row['steps'], f"{row['lr']:g}", *(f"{row[k]:.2f} ± {row[k + '_ci95']:.2f}" for k in REPORTED),
                       row['seconds'], 'best mIoU' if row is best else ('no step' if row['steps'] == 0 else '')])
    print(table.get_string())
    with open(osp.join(cfg.work_dir, 'sweep.json'), 'w') as f:
        json.dump(dict(config=cfg.filename, checkpoint=args.checkpoint, data_root=cfg.data_root,
                       test_seeds=list(cfg.test_seeds), test_episodes=cfg.test_episodes,
                       episode_adaptation=cfg.episode_adaptation.to_dict(), rows=rows, best=best), f, indent=1)
    print(f"best: steps={best['steps']} lr={best['lr']:g}; table in {osp.join(cfg.work_dir, 'sweep.json')}")


if __name__ == '__main__':
    main()
