"""IFA adaptation episodes: the query is an augmented copy of one of the labelled supports."""
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset, Compose
from mmengine.dist import is_main_process
from mmseg.registry import DATASETS, TRANSFORMS

from ..utils.validation import check_num_episodes
from .base_fewshot import BaseFewShotDataset, ImageRecord, build_transforms, episode_pipeline, pack_episode
from .pseudo_query import ifa_query_pipeline, item_seed, recipe_of


@DATASETS.register_module()
class IFAAdaptationDataset(BaseDataset):
    """Pseudo-query episodes for IFA adaptation on a target domain (official ``data/*_IFA.py`` loaders).

    Every episode has K labelled supports of one class; its query is support ``j``
    (``j = 0`` for 1-shot, else uniform) passed through ``query_pipeline`` (by default the
    support pipeline with :func:`ifa_augmentations` inserted after the mask is loaded,
    with the target's recipe, :func:`~ifa_mmseg.datasets.pseudo_query.recipe_of`).
    ``dataset`` is the target's evaluation dataset config, with the ``shot``,
    ``seed``/``num_episodes`` and ``episode_sampling`` of the test episodes.

    Support pools (``support_pool``):

    * ``'standard'``: once, from ``seed``, K images per class are drawn from
      ``pool_dataset`` (default: ``dataset``) among those that are never a query of the
      evaluation episodes of any of ``eval_seeds``; every epoch uses these images only.
      The choice is written to ``pool_file`` (e.g. in the work dir) when given. One
      episode per class by default. A dataset whose every image is a query (FSS-1000)
      names another split in ``ADAPTATION['pool_split']``; the default ``pool_dataset``
      is then ``dataset`` on that split.
    * ``'official'``: as the official code, every item draws a fresh test episode of
      ``dataset`` with the official call sequence and keeps its supports, so the
      supports change every epoch and come from the test pool. Default lengths
      6 / 3 / 1 / 520 (Deepglobe / ISIC / Chest X-ray / FSS-1000).

    Every random draw of an item (the official episode, the pseudo-query's support, the
    augmentations) comes from a generator seeded with (``seed``, epoch, index), the
    epoch being set by :meth:`set_epoch`: any worker count, order or a resumed run gives
    the same items. numpy's global state, which mmcv-style transforms draw from, is
    seeded for the item and restored afterwards.

    Args:
        dataset: config of the target's evaluation dataset.
        support_pool: ``'standard'`` or ``'official'``.
        seed: seed of the standard support pool.
        eval_seeds: the evaluation seeds whose queries the standard pool avoids.
        pool_dataset: where standard supports come from (default: ``dataset``).
        num_episodes: episodes per epoch; ``None`` for the defaults above.
        pool_file: JSON file receiving the standard pool (paths relative to ``data_root``).
        pipeline: per-image pipeline of the supports (default: the one of ``dataset``).
        query_pipeline: pipeline of the pseudo-query (default: see above).
        pack_cfg: the transform that assembles an episode.
    """

    def __init__(self,
                 dataset: dict,
                 support_pool: str = 'standard',
                 seed: int = 0,
                 eval_seeds: Sequence[int] = (0, 1, 2, 3, 4),
                 pool_dataset: Optional[dict] = None,
                 num_episodes: Optional[int] = None,
                 pool_file: Optional[str] = None,
                 pipeline: Optional[List[dict]] = None,
                 query_pipeline: Optional[List[dict]] = None,
                 pack_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if support_pool not in ('standard', 'official'):
            raise ValueError(f"support_pool must be 'standard' or 'official', got {support_pool!r}")
        if support_pool == 'official' and (pool_dataset is not None or pool_file is not None):
            raise ValueError("pool_dataset and pool_file belong to support_pool='standard'")
        check_num_episodes(num_episodes)
        self.eval_dataset: BaseFewShotDataset = DATASETS.build(dataset)
        pool_split = type(self.eval_dataset).ADAPTATION.get('pool_split')
        if pool_dataset is None and support_pool == 'standard' and pool_split is not None:
            pool_dataset = dict(dataset, split=pool_split)
        self.source: BaseFewShotDataset = (DATASETS.build(pool_dataset) if pool_dataset is not None
                                           else self.eval_dataset)
        self.epoch = 0
        self.pool_summary: Dict[str, object] = dict(support_pool=support_pool)
        self.support_pool = support_pool
        self.shot = self.eval_dataset.shot
        self.seed = seed
        self.eval_seeds = tuple(eval_seeds)
        self.pool_file = pool_file
        self._num_episodes = num_episodes
        if pipeline is None:
            pipeline = dataset.get('pipeline') or episode_pipeline(self.source.MASK_MODE)
        if query_pipeline is None:
            query_pipeline = ifa_query_pipeline(pipeline, **recipe_of(self.eval_dataset))
        self.query_pipeline = Compose(build_transforms(query_pipeline))
        self.pack = TRANSFORMS.build(pack_cfg or dict(type='PackFewShotInputs'))
        super().__init__(pipeline=build_transforms(pipeline), metainfo=dict(classes=self.source.metainfo['classes']),
                         **kwargs)

    def load_data_list(self) -> List[dict]:
        if self.support_pool == 'official':
            official = type(self.eval_dataset).ADAPTATION['official_episodes']
            n = self._num_episodes or official or len(self.eval_dataset.class_pools)
            # supports are resampled from the whole test pool: no test query is excluded
            self.pool_summary.update(pool_images=sum(map(len, self.eval_dataset.class_pools)), excluded_test_queries=0)
            return [dict(episode=i) for i in range(n)]
        pool = self._draw_pool()
        if self.pool_file and is_main_process():
            self._write_pool(pool)
        n = self._num_episodes or len(pool)
        return [dict(episode=i, class_id=pool[i % len(pool)][0], supports=pool[i % len(pool)][1])
                for i in range(n)]

    def _draw_pool(self) -> List[Tuple[int, List[ImageRecord]]]:
        """(class id, K images) for every class with images, avoiding every evaluation query."""
        queries = {e['query']['img_path'] for s in self.eval_seeds for e in self.eval_dataset.generate_episodes(s)}
        pool_images = {img['img_path'] for images in self.source.class_pools for img in images}
        rng = np.random.default_rng(self.seed)
        pool = []
        for class_id, images in enumerate(self.source.class_pools):
            if not images:
                continue
            free = [img for img in images if img['img_path'] not in queries]
            if len(free) < self.shot:
                name = self.source.metainfo['classes'][class_id]
                raise ValueError(
                    f'class {class_id} ({name}): {len(free)} of its {len(images)} images are never a query of the '
                    f'evaluation episodes (seeds {list(self.eval_seeds)}), {self.shot} are needed; take the '
                    f'pool from other images (pool_dataset, e.g. FSS-1000 split="trn") or fewer eval_seeds')
            pool.append((class_id, [free[p] for p in rng.choice(len(free), self.shot, replace=False).tolist()]))
        self.pool_summary.update(pool_images=sum(len(images) for _, images in pool),
                                 excluded_test_queries=len(queries & pool_images))
        return pool

    def _write_pool(self, pool: List[Tuple[int, List[ImageRecord]]]) -> None:
        root = self.source.data_root
        classes = self.source.metainfo['classes']
        record: Dict[str, object] = dict(
            dataset=type(self.source).__name__, data_root=root, shot=self.shot, seed=self.seed,
            eval_dataset=type(self.eval_dataset).__name__, eval_seeds=list(self.eval_seeds),
            supports={classes[c]: [os.path.relpath(img['img_path'], root) for img in images] for c, images in pool})
        os.makedirs(os.path.dirname(os.path.abspath(self.pool_file)), exist_ok=True)
        with open(self.pool_file, 'w') as f:
            json.dump(record, f, indent=1)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose draws the next items make (:class:`~ifa_mmseg.engine.EpisodeResampleHook`)."""
        self.epoch = epoch

    def prepare_data(self, idx: int) -> Optional[dict]:
        state = np.random.get_state()
        np.random.seed(item_seed(self.seed, self.epoch, idx))
        try:
            return self._draw_item(idx)
        finally:
            np.random.set_state(state)

    def _draw_item(self, idx: int) -> Optional[dict]:
        info = self.get_data_info(idx)
        if self.support_pool == 'official':
            info = self.eval_dataset.draw_episode(info['episode'], np.random, official=True)
        class_id, episode, supports = info['class_id'], info['episode'], info['supports']
        j = 0 if self.shot == 1 else int(np.random.randint(self.shot))
        query = dict(self.source.image_results(supports[j], class_id, episode), pseudo_query_index=j)
        return pack_episode(self.pack, self.query_pipeline(query),
                            [self.pipeline(self.source.image_results(s, class_id, episode)) for s in supports])

