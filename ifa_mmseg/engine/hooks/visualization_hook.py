"""Writes episode pictures during testing (``tools/test.py --show-dir``)."""
import os
import os.path as osp
from typing import Optional, Sequence

from mmengine.fileio import join_path
from mmengine.hooks import Hook
from mmseg.registry import HOOKS
from PIL import Image

from ifa_mmseg.visualization import episode_panel


@HOOKS.register_module()
class FewShotVisualizationHook(Hook):
    """Save a panel (supports + masks | query + ground truth | query + prediction) per episode.

    Args:
        draw: enable drawing.
        show_dir: output folder; relative paths go under the run's log dir.
        num_episodes: draw the episodes whose index is below this (per seed).
        alpha: mask opacity.
    """

    priority = 'NORMAL'

    def __init__(self, draw: bool = False, show_dir: str = 'vis', num_episodes: int = 8, alpha: float = 0.5) -> None:
        self.draw = draw
        self.show_dir = show_dir
        self.num_episodes = num_episodes
        self.alpha = alpha

    def _out_dir(self, runner) -> str:
        root = self.show_dir if osp.isabs(self.show_dir) else join_path(runner.log_dir, self.show_dir)
        seed = getattr(runner.test_loop, 'current_seed', None)
        return root if seed is None else join_path(root, f'seed{seed}')

    def after_test_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                        outputs: Optional[Sequence] = None) -> None:
        if not self.draw or outputs is None:
            return
        for query, raw, out in zip(data_batch['inputs'], data_batch['data_samples'], outputs):
            episode = out.metainfo.get('episode', batch_idx)
            if episode >= self.num_episodes:
                continue
            gt = out.gt_sem_seg.data[0] if 'gt_sem_seg' in out else None
            panel = episode_panel(raw.support_imgs, raw.support_masks, query, gt, out.pred_sem_seg.data[0],
                                  alpha=self.alpha)
            path = join_path(self._out_dir(runner), f'episode_{episode:05d}.png')
            os.makedirs(osp.dirname(path), exist_ok=True)
            Image.fromarray(panel).save(path)
