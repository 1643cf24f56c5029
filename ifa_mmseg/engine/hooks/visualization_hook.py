"""Episode pictures during testing (``tools/test.py --show-dir``), through the runner's visualizer."""
import heapq
import itertools
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_gather_object, get_world_size, is_main_process
from mmengine.fileio import join_path
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ifa_mmseg.structures import FewShotDataSample
from ifa_mmseg.visualization import FewShotLocalVisualizer, episode_iou

RULES = ('first', 'worst')


@HOOKS.register_module()
class FewShotVisualizationHook(Hook):
    """Draw episodes with :meth:`FewShotLocalVisualizer.add_datasample`, so that every vis
    backend of the runner's visualizer (local, TensorBoard, W&B) receives the pictures.

    With ``show_dir`` the pictures are also written to
    ``show_dir/seed<S>/episode_<index>.png`` (mmseg's meaning: a relative ``show_dir`` is
    under the run's timestamped log folder ``work_dir/<timestamp>/``); the local vis
    backend is then skipped, the picture being on disk already.

    Args:
        draw: enable drawing.
        show_dir: output folder, or None for the vis backends only.
        num_episodes: episodes drawn per seed (``rule='first'``) or per class and seed
            (``rule='worst'``).
        rule: ``'first'``: the episodes whose index is below ``num_episodes``; ``'worst'``:
            per class, the ``num_episodes`` episodes of lowest foreground IoU, drawn when
            the seed ends (at most ``num_episodes`` candidates per class are kept; with
            several processes they are gathered and the main process draws them).
        opacity: mask fill opacity (``alpha`` is an older name of it).
        show: display each picture in a window.
        wait_time: seconds each shown picture stays.
    """

    priority = 'NORMAL'

    def __init__(self, draw: bool = False, show_dir: Optional[str] = None, num_episodes: int = 8,
                 rule: str = 'first', opacity: float = 0.4, show: bool = False, wait_time: float = 0.,
                 alpha: Optional[float] = None) -> None:
        if rule not in RULES:
            raise ValueError(f'FewShotVisualizationHook: rule must be one of {RULES}, got {rule!r}')
        self.draw = draw
        self.show_dir = show_dir
        self.num_episodes = num_episodes
        self.rule = rule
        self.opacity = opacity if alpha is None else alpha
        self.show = show
        self.wait_time = wait_time
        self._visualizer: Optional[FewShotLocalVisualizer] = None
        self._seed = None
        self._worst: Dict[int, List[Tuple]] = {}
        self._counter = itertools.count()

    # ------------------------------------------------------------------ helpers
    def _get_visualizer(self, runner) -> FewShotLocalVisualizer:
        """The runner's visualizer, or a FewShotLocalVisualizer sharing its backends if it is another kind."""
        if self._visualizer is None:
            vis = runner.visualizer
            if not isinstance(vis, FewShotLocalVisualizer):
                own = FewShotLocalVisualizer(name=f'{vis.instance_name}_episodes')
                own._vis_backends = vis._vis_backends
                vis = own
            self._visualizer = vis
        loop = getattr(runner, '_test_loop', None)
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        meta = getattr(dataset, 'metainfo', None)
        if meta is not None and not (self._visualizer.dataset_meta or {}).get('classes'):
            self._visualizer.dataset_meta = dict(meta)
        return self._visualizer

    def _out_dir(self, runner, seed) -> Optional[str]:
        if self.show_dir is None:
            return None
        root = self.show_dir if osp.isabs(self.show_dir) else join_path(runner.log_dir, self.show_dir)
        return root if seed is None else join_path(root, f'seed{seed}')

    def _draw(self, runner, query: torch.Tensor, sample: FewShotDataSample, seed) -> None:
        episode = sample.metainfo.get('episode', 0)
        out_dir = self._out_dir(runner, seed)
        name = f'episode_{episode:05d}' if seed is None else f'seed{seed}_episode_{episode:05d}'
        self._get_visualizer(runner).add_datasample(
            name, query.permute(1, 2, 0).numpy(), sample, show=self.show, wait_time=self.wait_time,
            out_file=None if out_dir is None else join_path(out_dir, f'episode_{episode:05d}.png'),
            step=runner.iter, opacity=self.opacity)

    @staticmethod
    def _episode_sample(raw: FewShotDataSample, out: FewShotDataSample) -> FewShotDataSample:
        """What a picture needs: the loader's uint8 supports, ground truth, prediction, metainfo (on the CPU)."""
        sample = FewShotDataSample(metainfo=out.metainfo)
        sample.support_imgs = raw.support_imgs.cpu()
        sample.support_masks = raw.support_masks.cpu()
        if 'gt_sem_seg' in out:
            sample.gt_sem_seg = out.gt_sem_seg.cpu()
        sample.pred_sem_seg = out.pred_sem_seg.cpu()
        return sample

    # ------------------------------------------------------------------ hook points
    def before_test(self, runner) -> None:
        self._seed, self._worst = None, {}

    def after_test_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                        outputs: Optional[Sequence] = None) -> None:
        if not self.draw or outputs is None:
            return
        seed = getattr(runner.test_loop, 'current_seed', None)
        if self.rule == 'worst' and seed != self._seed:
            self._draw_worst(runner)
        self._seed = seed
        for i, (query, raw, out) in enumerate(zip(data_batch['inputs'], data_batch['data_samples'], outputs)):
            episode = out.metainfo.get('episode', batch_idx * len(outputs) + i)
            if self.rule == 'first':
                if episode < self.num_episodes:
                    self._draw(runner, query.cpu(), self._episode_sample(raw, out), seed)
                continue
            iou = episode_iou(out)
            if iou is None:
                continue
            heap = self._worst.setdefault(out.metainfo.get('class_id', -1), [])
            key = (-iou, -episode)
            if len(heap) >= self.num_episodes and key <= heap[0][:2]:
                continue  # not among the class's worst so far
            item = (*key, next(self._counter), query.cpu().clone(), self._episode_sample(raw, out))
            heapq.heappush(heap, item) if len(heap) < self.num_episodes else heapq.heapreplace(heap, item)

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if self.draw and self.rule == 'worst':
            self._draw_worst(runner)

    def _draw_worst(self, runner) -> None:
        """Draw the kept worst episodes of the seed that ended (all processes' candidates), then forget them."""
        worst, self._worst = self._worst, {}
        if self.num_episodes <= 0:
            return
        if get_world_size() > 1:
            merged: Dict[int, List[Tuple]] = {}
            for part in all_gather_object(worst):
                for class_id, items in part.items():
                    merged.setdefault(class_id, []).extend(items)
            if not is_main_process():
                return
            worst = merged
        for class_id in sorted(worst):
            seen, chosen = set(), []
            for item in sorted(worst[class_id], key=lambda t: (-t[0], -t[1])):  # lowest IoU first
                if -item[1] not in seen:  # the distributed sampler may repeat an episode
                    seen.add(-item[1])
                    chosen.append(item)
            for item in chosen[:self.num_episodes]:
                self._draw(runner, item[3], item[4], self._seed)
