"""Sweep per-episode adaptation settings of a config on a checkpoint: gain, and cost against plain evaluation.

    python tools/analysis_tools/episode_adaptation_sweep.py CONFIG CHECKPOINT \
        --grid steps=5,10,20 optimizer.lr=5e-4,2e-3 \
        --grid params=last_block views=4 steps=5,10 optimizer.lr=1e-2 \
        --cfg-options data_root=HELD_OUT_DATA

Each ``--grid`` names ``episode_adaptation`` keys (dotted below ``optimizer``) with one or
more comma-separated values, and adds every combination to the runs; unnamed keys keep the
config's values. One more run comes first: the checkpoint with no step, through the same
route (the lr-0 control: with no weight update it is the checkpoint's own prediction, see
``tests/test_episode_adaptation.py``). Every run is the config's multi-seed test with
``adaptation_labels='episode'``. The table gives mean mIoU / FBIoU with their 95%
intervals over the test seeds, the gain over the no-step run, the seconds per episode and
their ratio to the no-step run (plain evaluation, measured in this invocation); the best
mIoU is marked. It is written to ``WORK_DIR/sweep.json``, each run with the complete
settings it ran with (its recipe spelt out).

Choose settings on data that is not evaluated afterwards (e.g. ``data_root`` of a
held-out split, or another FSS-1000 split): a setting chosen on the test episodes
carries that selection in its numbers. Time with one thread per process
(``OMP_NUM_THREADS=1``) on an otherwise idle machine.
"""
import argparse
import ast
import copy
import itertools
import json
import os.path as osp
from typing import Any, Dict, List, Sequence

from prettytable import PrettyTable

from ifa_mmseg.analysis.evaluation_run import evaluate
from ifa_mmseg.models.adaptation import episode_adaptation_settings
from ifa_mmseg.utils import add_common_args, load_config

REPORTED = ('mIoU', 'FBIoU')
Setting = Dict[str, Any]  # dotted episode_adaptation key -> value


def parse_value(text: str) -> Any:
    """A Python literal (``5``, ``1e-2``, ``None``, ``['backbone.layer3']``), else the text itself (``last_block``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_grid(items: Sequence[str]) -> List[Setting]:
    """``['steps=5,10', 'optimizer.lr=1e-2']`` -> every combination, as dotted-key settings."""
    keys, values = [], []
    for item in items:
        key, sep, text = item.partition('=')
        if not sep or not key or not text:
            raise argparse.ArgumentTypeError(f'--grid takes KEY=V1,V2,..., got {item!r}')
        keys.append(key)
        values.append([parse_value(v) for v in text.split(',')] if not text.startswith('[') else [parse_value(text)])
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Sweep per-episode adaptation settings: gain and cost')
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='the checkpoint every episode adapts from (a source model)')
    parser.add_argument('--grid', nargs='+', action='append', required=True, metavar='KEY=V1,V2',
                        help='episode_adaptation keys and values; every combination runs (repeatable)')
    add_common_args(parser)
    return parser.parse_args()


def with_setting(cfg, setting: Setting):
    """``cfg`` with ``adaptation_labels='episode'`` and ``setting`` merged into its ``episode_adaptation``."""
    cfg = copy.deepcopy(cfg)
    cfg.adaptation_labels = 'episode'
    cfg.merge_from_dict({f'episode_adaptation.{k}': v for k, v in setting.items()})
    return cfg


def label(setting: Setting) -> str:
    return ' '.join(f'{k}={v}' for k, v in setting.items()) or 'config'


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    settings = [dict(steps=0)] + [s for items in args.grid for s in parse_grid(items)]
    rows: List[dict] = []
    for i, setting in enumerate(settings):
        run_cfg = with_setting(cfg, setting)
        run = evaluate(run_cfg, osp.join(cfg.work_dir, f'run{i}'))
        metrics, seconds = run.metrics, run.seconds_per_episode
        rows.append(dict(setting=setting, episode_adaptation=episode_adaptation_settings(run_cfg.episode_adaptation),
                         seconds_per_episode=seconds, **{k: metrics[k] for k in REPORTED},
                         **{f'{k}_ci95': metrics[f'{k}_ci95'] for k in REPORTED}))
    control = rows[0]
    for row in rows:
        row['gain'] = {k: row[k] - control[k] for k in REPORTED}
        row['cost_ratio'] = row['seconds_per_episode'] / control['seconds_per_episode']
    best = max(rows[1:], key=lambda r: r['mIoU'])
    table = PrettyTable(['setting', *REPORTED, 'mIoU gain', 's / episode', 'x no step', ''])
    table.align['setting'] = 'l'
    for row in rows:
        table.add_row([label(row['setting']), *(f"{row[k]:.2f} ± {row[k + '_ci95']:.2f}" for k in REPORTED),
                       f"{row['gain']['mIoU']:+.2f}", f"{row['seconds_per_episode']:.3f}", f"{row['cost_ratio']:.1f}",
                       'best mIoU' if row is best else ('no step (control)' if row is control else '')])
    print(table.get_string())
    out = osp.join(cfg.work_dir, 'sweep.json')
    with open(out, 'w') as f:
        json.dump(dict(config=cfg.filename, checkpoint=args.checkpoint, data_root=cfg.data_root,
                       test_seeds=list(cfg.test_seeds), test_episodes=cfg.test_episodes, rows=rows,
                       best=best, table=table.get_string()), f, indent=1)
    print(f"best: {label(best['setting'])}; table in {out}")


if __name__ == '__main__':
    main()
