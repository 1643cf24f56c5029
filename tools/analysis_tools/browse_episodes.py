"""Pictures of the episodes a config will test (or train) on, without a model.

    python tools/analysis_tools/browse_episodes.py CONFIG [--stage test|train] [--num 8] [--start 0]
        [--seed S] [--epoch E] [--out DIR] [--cfg-options k=v ...]

The config is resolved as the runner resolves it (``resolve_config``: data root, shot,
episodes, seeds, protocol), then its dataset is built:

* ``--stage test`` (default): the test episodes of the first test seed (``--seed`` another);
* ``--stage train``: the training dataset: PASCAL episodes for a source config; for an
  adaptation config the IFA pseudo-episodes, whose query is an augmented copy of one of the
  supports (flips, rot90, grid shuffle, colour jitter), as drawn in epoch ``--epoch``.

Each picture is one episode after the pipeline: the K supports with their masks (green) |
the query with its mask (blue), drawn by ``FewShotLocalVisualizer`` (titled tiles in the
images' original aspect ratio, the class name above them). ``DIR/episodes.csv`` lists every
picture with its episode, class, query and supports. DIR defaults to
``work_dirs/<config name>/episodes_<stage>`` under the current directory.
"""
import argparse
import csv
import os
import os.path as osp
import sys
import time
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.utils import ProgressBar


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Write pictures of the episodes a config tests or trains on')
    parser.add_argument('config', help='config file')
    parser.add_argument('--stage', choices=['test', 'train'], default='test',
                        help='test episodes, or the training (source or IFA adaptation) episodes')
    parser.add_argument('--num', type=int, default=8, help='number of episodes to draw')
    parser.add_argument('--start', type=int, default=0, help='index of the first episode drawn')
    parser.add_argument('--seed', type=int, help='test stage: the episode seed (default: the first of test_seeds)')
    parser.add_argument('--epoch', type=int, default=0, help='train stage: the epoch whose draws are shown')
    parser.add_argument('--out', help='output folder (default: work_dirs/<config name>/episodes_<stage>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries, key=value')
    args = parser.parse_args(argv)
    if args.num < 1 or args.start < 0:
        parser.error('--num must be at least 1 and --start at least 0')
    return args


def build_dataset(cfg: Config, stage: str, seed: Optional[int], epoch: int):
    """The resolved config's test (seeded) or training (at ``epoch``) dataset."""
    from mmseg.registry import DATASETS

    loader = cfg.get('test_dataloader' if stage == 'test' else 'train_dataloader')
    if not loader or not loader.get('dataset'):
        other = 'train' if stage == 'test' else 'test'
        raise SystemExit(f'{cfg.filename} has no {stage}_dataloader.dataset; try --stage {other}')
    dataset_cfg = loader.dataset
    if stage == 'test' and seed is not None:
        dataset_cfg.seed = seed
    dataset = DATASETS.build(dataset_cfg)
    if stage == 'train' and hasattr(dataset, 'set_epoch'):
        dataset.set_epoch(epoch)
    return dataset


def make_drawer(classes: Sequence[str]) -> Callable[[dict, str], np.ndarray]:
    """``draw(item, title)``: supports with their masks | query with its mask, [H, W, 3] uint8.

    With :class:`~ifa_mmseg.visualization.FewShotLocalVisualizer` (titled tiles in the images'
    own aspect ratio, a header with the class name), else with ``episode_panel`` minus its
    prediction tile.
    """
    try:
        from ifa_mmseg.visualization import FewShotLocalVisualizer
    except ImportError:
        FewShotLocalVisualizer = None
    if FewShotLocalVisualizer is not None:
        visualizer = FewShotLocalVisualizer(name=f'browse_episodes_{time.time_ns()}', classes=list(classes))

        def draw(item: dict, title: str) -> np.ndarray:
            return visualizer.draw_episode(item['inputs'], item['data_samples'], draw_gt=True, draw_pred=False,
                                           title=title)
        return draw

    from ifa_mmseg.visualization import episode_panel

    def draw_panel(item: dict, title: str) -> np.ndarray:
        sample, query, gap = item['data_samples'], item['inputs'], 4
        gt = sample.gt_sem_seg.data[0] if 'gt_sem_seg' in sample else None
        # episode_panel ends with the query under a prediction; there is none, so that tile is cut off
        panel = episode_panel(sample.support_imgs, sample.support_masks, query, gt,
                              torch.zeros(query.shape[-2:], dtype=torch.long), gap=gap)
        return panel[:, :panel.shape[1] - query.shape[-1] - gap]
    return draw_panel


def safe(name: str) -> str:
    return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in str(name))


def browse(args: argparse.Namespace) -> List[str]:
    """Write the pictures and ``episodes.csv``; returns the picture paths."""
    from mmengine.registry import init_default_scope
    from PIL import Image

    import ifa_mmseg  # noqa: F401  (registers datasets and transforms)
    from ifa_mmseg.engine.protocol import ProtocolError, resolve_config

    init_default_scope('mmseg')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.pop('work_dir', None)  # nothing is written beside a run (no support_pool.json)
    try:
        cfg = resolve_config(cfg)
    except ProtocolError as err:
        raise SystemExit(f'{args.config}: {err}')
    try:
        dataset = build_dataset(cfg, args.stage, args.seed, args.epoch)
    except (ValueError, FileNotFoundError) as err:  # bad layout, too few images for the pool, ...
        raise SystemExit(f'{args.config} ({args.stage} dataset): {err}')
    indices = list(range(args.start, min(args.start + args.num, len(dataset))))
    if not indices:
        raise SystemExit(f'--start {args.start}: the {args.stage} dataset has {len(dataset)} episodes')
    out = args.out or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0], f'episodes_{args.stage}')
    os.makedirs(out, exist_ok=True)
    classes = dataset.metainfo.get('classes') or ()
    draw = make_drawer(classes)
    rows, paths = [], []
    print(f'{len(indices)} of {len(dataset)} {args.stage} episodes of {args.config} -> {out}')
    progress = ProgressBar(len(indices))
    for i in indices:
        item = dataset[i]
        meta = item['data_samples'].metainfo
        class_id = meta.get('class_id')
        name = classes[class_id] if class_id is not None and class_id < len(classes) else class_id
        path = osp.join(out, f'{args.stage}_{i:05d}_{safe(name)}.png')
        pseudo = meta.get('pseudo_query_index')
        title = f'{args.stage} episode {i}' + (f' (query: augmented copy of support {pseudo + 1})'
                                                if pseudo is not None else '')
        Image.fromarray(draw(item, title)).save(path)
        paths.append(path)
        rows.append(dict(picture=osp.basename(path), index=i, episode=meta.get('episode'), class_id=class_id,
                         class_name=name, query=meta.get('img_path'),
                         pseudo_query_of_support=meta.get('pseudo_query_index', ''),
                         supports=' '.join(meta.get('support_paths', []))))
        progress.update()
    sys.stdout.write('\n')
    with open(osp.join(out, 'episodes.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f'wrote {len(paths)} pictures and episodes.csv to {out}')
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    browse(parse_args(argv))
    return 0


if __name__ == '__main__':
    sys.exit(main())
