"""One table for several models and label settings, evaluated under the same protocol keys.

    python tools/analysis_tools/compare_models.py \
        --run configs/ifa/deepglobe_1shot.py work_dirs/deepglobe_1shot/epoch_20.pth \
        --run configs/ifa/deepglobe_1shot.py work_dirs/pascal_source_1shot/epoch_20.pth none \
        --cfg-options data_root=data test_seeds=[0,1,2,3,4] --work-dir work_dirs/compare

Each ``--run CONFIG CHECKPOINT [ADAPTATION_LABELS]`` is one multi-seed test (the config's
own, or with ``adaptation_labels`` overridden, e.g. ``none`` to test a source checkpoint on
the target); ``--cfg-options`` apply to every run, so that they share the facts (data root,
shot, test episodes and seeds, metrics). Every row has the same columns: the model, the
target, the protocol keys the run resolved, episodes, the standard ``mIoU`` and ``FBIoU``
and the ``official.mIoU`` (mean and 95% interval over the test seeds; ``-`` for a metric
the run does not compute), seconds per episode, and whether its checkpoint was selected on
the test set. Written to ``WORK_DIR/comparison.md``, ``comparison.csv`` and
``comparison.json`` (with each run's full protocol record); each run's log is in
``WORK_DIR/run<i>``.
"""
import argparse
import csv
import json
import os
import os.path as osp
from typing import Dict, List, Sequence

from ifa_mmseg.analysis.evaluation_run import EvaluationRun, evaluate
from ifa_mmseg.engine.protocol import PROTOCOL_CHOICES, evaluated_dataset
from ifa_mmseg.utils import add_common_args, load_config

METRICS = ('mIoU', 'FBIoU', 'official.mIoU')
COLUMNS = ('model', 'backbone', 'target', 'shot', 'adaptation_labels', 'selection', 'fss_split', 'episode_sampling',
           'seeds x episodes', *METRICS, 's / episode', 'selected on test set', 'checkpoint')


def parse_args(argv: Sequence[str] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate several configs/checkpoints under the same protocol '
                                                 'keys and write one comparison table')
    parser.add_argument('--run', nargs='+', action='append', required=True,
                        metavar='CONFIG CHECKPOINT [ADAPTATION_LABELS]', help='one evaluation (repeatable)')
    add_common_args(parser)
    args = parser.parse_args(argv)
    for run in args.run:
        if len(run) not in (2, 3) or (len(run) == 3 and run[2] not in PROTOCOL_CHOICES['adaptation_labels']):
            parser.error(f'--run takes CONFIG CHECKPOINT [ADAPTATION_LABELS in '
                         f'{PROTOCOL_CHOICES["adaptation_labels"]}], got {run}')
    return args


def model_names(model: dict) -> Dict[str, str]:
    """The model (its head, or the segmentor when it has none) and the backbone (with its depth or arch)."""
    head = (model.get('decode_head') or {}).get('type') or model['type']
    backbone = model.get('backbone') or {}
    size = backbone.get('depth') or backbone.get('arch') or ''
    return dict(model=str(head).removesuffix('Head'), backbone=f"{backbone.get('type', '-')}{f'-{size}' if size else ''}")


def cell(metrics: Dict[str, float], key: str) -> str:
    return f'{metrics[key]:.2f} ± {metrics[key + "_ci95"]:.2f}' if key in metrics else '-'


def row(run: EvaluationRun, model: dict, target: str, checkpoint: str) -> Dict[str, str]:
    p = run.protocol
    return dict(**model_names(model), target=target, shot=str(p['shot']),
                **{k: str(p[k]) for k in ('adaptation_labels', 'selection', 'fss_split', 'episode_sampling')},
                **{'seeds x episodes': f"{len(p['test_seeds'])} x {run.episodes // len(p['test_seeds'])}"},
                **{k: cell(run.metrics, k) for k in METRICS}, **{'s / episode': f'{run.seconds_per_episode:.3f}'},
                **{'selected on test set': 'yes' if p['checkpoint_selected_on_test_set'] else 'no'},
                checkpoint=checkpoint)


def markdown(rows: List[Dict[str, str]]) -> str:
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    return '\n'.join(lines + ['| ' + ' | '.join(r[c] for c in COLUMNS) + ' |' for r in rows]) + '\n'


def main(argv: Sequence[str] = None) -> None:
    args = parse_args(argv)
    rows, records = [], []
    work_root = args.work_dir or osp.join('work_dirs', 'compare_models')
    for i, (config, checkpoint, *labels) in enumerate(args.run):
        args.config = config
        cfg = load_config(args)
        cfg.load_from = checkpoint
        if labels:
            cfg.adaptation_labels = labels[0]
        run = evaluate(cfg, osp.join(work_root, f'run{i}'))
        target = evaluated_dataset(cfg)['type']
        rows.append(row(run, cfg.model, target, checkpoint))
        records.append(dict(config=config, checkpoint=checkpoint, protocol=run.protocol, metrics=run.metrics,
                            seconds_per_episode=run.seconds_per_episode))
        print(f'[{i + 1}/{len(args.run)}] {config}: done', flush=True)
    table = markdown(rows)
    os.makedirs(work_root, exist_ok=True)
    with open(osp.join(work_root, 'comparison.md'), 'w') as f:
        f.write(table)
    with open(osp.join(work_root, 'comparison.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with open(osp.join(work_root, 'comparison.json'), 'w') as f:
        json.dump(records, f, indent=1, default=str)
    print(table + f'written to {work_root}/comparison.{{md,csv,json}}')


if __name__ == '__main__':
    main()
