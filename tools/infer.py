"""Segment query images given K support images and their masks; write masks and pictures.

    python tools/infer.py CONFIG CKPT --support IMG MASK [--support IMG MASK ...]
        --query PATH_OR_DIR [...] --out DIR [--batch-size N] [--device cpu] [--save-prob]
        [--opacity A] [--title TEXT] [--adapt-steps N [--adapt-seed S]]

Writes, for every query ``<stem>.<ext>``, in the layout of ``FewShotInferencer``'s ``out_dir``
(MMSegInferencer's): ``DIR/pred/<stem>.png`` (0/255, the query's size),
``DIR/vis/<stem>.png`` (the episode picture of ``FewShotLocalVisualizer``: each support
with its mask | query | query with prediction, titled, each in its own aspect ratio, masks
at ``--opacity`` and outlined, ``--title`` above) and, with ``--save-prob``,
``DIR/prob/<stem>.npy`` (float32 foreground probability).
With ``--adapt-steps N`` a copy of the model is first adapted to the support set (N steps
of the config's ``episode_adaptation`` on pseudo-queries, augmented copies of the
supports), as ``adaptation_labels='episode'`` adapts each test episode.
Every input, and that every output path can be written, is checked before any
prediction; outputs are written to a temporary folder beside DIR and moved into DIR only
once every query has been predicted.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import tempfile
from typing import Iterator, List, Optional

import numpy as np
from mmengine.config import DictAction
from mmengine.utils import ProgressBar
from PIL import Image

from ifa_mmseg.apis.inference import OUTPUT_LAYOUT, FewShotInferencer, list_queries, output_path, output_stems
from ifa_mmseg.utils import NonFiniteError
from ifa_mmseg.visualization import FewShotLocalVisualizer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Few-shot segmentation of query images with an ifa-mmseg model',
        usage='%(prog)s CONFIG CHECKPOINT --support IMG MASK [--support IMG MASK ...] --query PATH_OR_DIR '
        '[PATH_OR_DIR ...] --out DIR [options]')
    parser.add_argument('config', help='config file (model and dataset pipeline)')
    parser.add_argument('checkpoint', help='segmentor checkpoint')
    # two paths each, counted by support_pairs() so that a missing mask is reported with its image's name
    parser.add_argument('--support', nargs='+', action='append', required=True, metavar='PATH',
                        help='a support image and its mask (--support IMG MASK); repeat for K shots')
    parser.add_argument('--query', nargs='+', required=True, metavar='PATH_OR_DIR',
                        help='query images, or folders whose images are all queries')
    parser.add_argument('--out', required=True, metavar='DIR', help='output folder')
    parser.add_argument('--batch-size', type=int, default=1, help='queries per forward pass')
    parser.add_argument('--device', help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--save-prob', action='store_true', help='also save foreground probabilities (.npy)')
    parser.add_argument('--opacity', type=float, default=0.4,
                        help='mask fill opacity in the overlays, 0 (outlines only) to 1 (default 0.4)')
    parser.add_argument('--title', help='a title line at the top of every overlay')
    parser.add_argument('--adapt-steps', type=int, default=0, metavar='N',
                        help="adapt a copy of the model to the support set first: N optimizer steps on its "
                        "pseudo-queries (augmented supports), with the config's episode_adaptation settings "
                        "(adaptation_labels='episode' at test time); default 0, no adaptation")
    parser.add_argument('--adapt-seed', type=int, default=0, metavar='S',
                        help='seed of the pseudo-queries drawn for --adapt-steps (default 0)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries, key=value')
    return parser.parse_args()


def support_pairs(groups: List[List[str]]) -> List[List[str]]:
    """Each ``--support`` must give exactly an image and its mask."""
    for group in groups:
        if len(group) != 2:
            raise ValueError(f'--support takes an image and its mask, got {len(group)} path(s): {" ".join(group)}')
    return groups


def output_subfolders(save_prob: bool) -> List[str]:
    """The subfolders of the output folder that a run fills."""
    return [sub for sub in OUTPUT_LAYOUT if save_prob or sub != 'prob']


def check_outputs(out: str, stems: List[str], save_prob: bool) -> None:
    """Raise a ValueError naming the first output path that could not be written.

    ``out`` and its subfolders must be writable folders where they exist; the nearest
    existing folder above ``out`` (where ``out`` is created and the temporary folder is
    made) must be a writable folder; no output file's path may be taken by a folder.
    """
    out = osp.abspath(out)
    for folder in [out] + [osp.join(out, sub) for sub in output_subfolders(save_prob)]:
        if osp.lexists(folder) and not osp.isdir(folder):
            raise ValueError(f'cannot write outputs into {folder}: it exists and is not a folder')
        if osp.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f'cannot write outputs into {folder}: no write permission')
    parent = osp.dirname(out)
    while not osp.lexists(parent):
        parent = osp.dirname(parent)
    if not osp.isdir(parent):
        raise ValueError(f'cannot create {out}: {parent} exists and is not a folder')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f'cannot write {out} and its temporary folder: no write permission in {parent}')
    for sub in output_subfolders(save_prob):
        for stem in stems:
            if osp.isdir(output_path(out, sub, stem)):
                raise ValueError(f'cannot write {output_path(out, sub, stem)}: a folder of that name is in the way')


def write_result(tmp: str, stem: str, result: dict, visualizer: FewShotLocalVisualizer, opacity: float = 0.4,
                 title: Optional[str] = None) -> None:
    """Mask PNG, overlay picture and, when predicted, the probability map of one query."""
    Image.fromarray(result['mask'] * 255).save(output_path(tmp, 'pred', stem))
    panel = visualizer.draw_episode(result['img'], result['data_sample'], draw_gt=False, opacity=opacity,
                                    title=title)
    Image.fromarray(panel).save(output_path(tmp, 'vis', stem))
    if 'prob' in result:
        np.save(output_path(tmp, 'prob', stem), result['prob'])


def write_outputs(tmp: str, stems: List[str], results: Iterator[dict], visualizer: FewShotLocalVisualizer,
                  save_prob: bool, opacity: float = 0.4, title: Optional[str] = None) -> None:
    """Predict query after query (with a progress bar) and write each one's files under ``tmp``."""
    for sub in output_subfolders(save_prob):
        os.mkdir(osp.join(tmp, sub))
    progress = ProgressBar(len(stems))
    for stem, result in zip(stems, results):
        write_result(tmp, stem, result, visualizer, opacity, title)
        progress.update()


def publish(tmp: str, out: str) -> None:
    """Move every finished file from ``tmp`` into ``out`` (same file system, so each move is atomic)."""
    for sub in os.listdir(tmp):
        os.makedirs(osp.join(out, sub), exist_ok=True)
        for name in os.listdir(osp.join(tmp, sub)):
            os.replace(osp.join(tmp, sub, name), osp.join(out, sub, name))


def main() -> None:
    args = parse_args()
    try:
        pairs = support_pairs(args.support)
        queries = list_queries(args.query)
        stems = output_stems(queries)
        check_outputs(args.out, stems, args.save_prob)
        if not 0 <= args.opacity <= 1:
            raise ValueError(f'--opacity must be between 0 and 1, got {args.opacity}')
        if args.adapt_steps < 0:
            raise ValueError(f'--adapt-steps must be 0 or more, got {args.adapt_steps}')
        inferencer = FewShotInferencer(args.config, args.checkpoint, args.device, args.cfg_options)
        supports = inferencer.load_supports([p[0] for p in pairs], [p[1] for p in pairs], args.adapt_steps,
                                            args.adapt_seed)
        results = inferencer.predict(queries, supports, args.batch_size, args.save_prob)
    except (ValueError, OSError, NonFiniteError) as err:
        sys.exit(f'error: {err}')

    out = osp.abspath(args.out)
    os.makedirs(osp.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(out)}.', dir=osp.dirname(out))
    try:
        try:
            write_outputs(tmp, stems, results, inferencer.visualizer, args.save_prob, args.opacity, args.title)
        except (ValueError, OSError, NonFiniteError) as err:  # a query that fails to load now, or diverges
            sys.exit(f'\nerror: {err}\nnothing was written to {out}')
        publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'\n{len(stems)} queries: masks and overlays in {out}')


if __name__ == '__main__':
    main()
