"""Episodic few-shot datasets: a pre-generated, seeded table of (class, query, K supports)."""
import copy
import os
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset, Compose
from mmseg.registry import DATASETS, TRANSFORMS

from ..utils.validation import check_num_episodes, is_whole
from .pseudo_query import draw_pseudo_queries, item_seed, recipe_of, split_at_mask_loading
from .transforms.loading import MASK_RULE, LoadBinaryMask

ImageRecord = Dict[str, str]  # {'img_path': ..., 'seg_map_path': ...}
LegacyRNG = Union[np.random.RandomState, ModuleType]  # a RandomState, or the np.random module itself
MASK_CHECK_READS = 8  # masks read per class, at most, to find one with foreground


def build_transforms(transforms: Sequence[Union[dict, Callable]]) -> List[Callable]:
    """Transforms built from mmseg's registry, so that no default scope is needed."""
    return [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in transforms]


def episode_pipeline(mask_mode: str = 'threshold', scale: Tuple[int, int] = (400, 400)) -> List[dict]:
    """The per-image pipeline of the official loaders, as transform configs.

    PIL decoding to RGB, the mask binarised (at 128, or by class label for PASCAL), then
    the image resized with PIL bilinear and the mask with PyTorch legacy nearest to
    ``scale`` (w, h), aspect ratio not kept.
    """
    return [
        dict(type='LoadRGBImageFromFile'),
        dict(type='LoadBinaryMask', mode=mask_mode),
        dict(type='FewShotResize', scale=scale),
    ]


@DATASETS.register_module()
class BaseFewShotDataset(BaseDataset):
    """Few-shot episodes read from a published layout under ``data_root``.

    Subclasses read their layout (:meth:`load_layout`): the images of every class in the
    official loader's order and, for datasets whose episodes walk a fixed query list
    (PASCAL, FSS-1000), that list. The episode table is built once from ``seed`` when
    the dataset is initialised, so episode ``i`` is the same for any batch size, worker
    count or world size. Episode ``i`` of a class-cycling dataset has
    class ``i mod n_classes`` and a query drawn from that class; otherwise its query is
    entry ``i mod len(queries)``.

    Sampling (``episode_sampling``):

    * ``'official'``: the numpy call sequence of the official loaders' ``sample_episode``
      (``data/deepglobe.py``, ``isic.py``, ``lung.py``, ``fss.py``, ``pascal.py``) on a legacy
      ``RandomState(seed)``, i.e. what ``np.random.seed(seed)`` followed by the official
      loader in index order gives: each draw is ``choice(n, 1, replace=False)``; the
      query is drawn first, then supports until ``shot`` of them differ from the query
      (supports may repeat each other).
    * ``'standard'``: a ``numpy.random.Generator(PCG64(seed))``; the ``shot`` supports
      are distinct and all differ from the query.

    Each item runs ``pipeline`` once on the query and once on every support, then
    ``pack_cfg`` (default :class:`PackFewShotInputs`) on ``dict(query=..., supports=[...])``.

    With ``adapt_queries=N`` (``adaptation_labels='episode'``, set by the protocol resolver)
    an item also carries N pseudo-queries for adapting the model to its episode: copies
    of its supports passed through the IFA augmentations of this target (its recipe,
    ``metainfo['pseudo_query']``: :func:`~ifa_mmseg.datasets.pseudo_query.recipe_of`)
    at the original resolution, then through the rest of ``pipeline``
    (:func:`~ifa_mmseg.datasets.pseudo_query.draw_pseudo_queries`). Their draws come from
    (``seed``, episode index) alone; the query is not used.

    Args:
        data_root: the dataset root holding the published layout.
        shot: supports per episode (K).
        num_episodes: table length; ``None`` for the dataset's default.
        seed: episode seed.
        episode_sampling: ``'standard'`` or ``'official'``.
        pipeline: per-image transforms; ``None`` for :func:`episode_pipeline` with the
            dataset's mask rule.
        pack_cfg: the transform that assembles an episode.
        adapt_queries: pseudo-queries per episode for test-time adaptation (0: none).
        **kwargs: :class:`~mmengine.dataset.BaseDataset` arguments, e.g. ``metainfo`` (whose
            ``pseudo_query`` overrides the target's pseudo-query recipe).
    """

    METAINFO: dict = dict(classes=())
    MASK_MODE = 'threshold'
    DEFAULT_NUM_EPISODES: Optional[int] = 600
    # the official adaptation stage's loader (data/*_IFA.py) of this target: episodes per epoch with the test pool
    # as supports (None: one per class), and the split its supports come from (None: the evaluated one)
    ADAPTATION = dict(official_episodes=None, pool_split=None)

    def __init__(self,
                 data_root: str,
                 shot: int = 1,
                 num_episodes: Optional[int] = None,
                 seed: int = 0,
                 episode_sampling: str = 'standard',
                 pipeline: Optional[Sequence[Union[dict, Callable]]] = None,
                 pack_cfg: Optional[dict] = None,
                 adapt_queries: int = 0,
                 **kwargs) -> None:
        if episode_sampling not in ('standard', 'official'):
            raise ValueError(f"episode_sampling must be 'standard' or 'official', got {episode_sampling!r}")
        if not is_whole(shot) or shot < 1:
            raise ValueError(f'shot must be a whole number >= 1, got {shot!r}')
        check_num_episodes(num_episodes)
        if not is_whole(seed) or seed < 0:
            raise ValueError(f'seed (the episode seed) must be a whole number >= 0, got {seed!r}')
        self.shot = shot
        self.seed = seed
        self.episode_sampling = episode_sampling
        self._num_episodes = num_episodes
        self.class_pools: List[List[ImageRecord]] = []
        self.class_dirs: List[str] = []  # the folder each class's images are listed from, for messages
        self.queries: Optional[List[Tuple[int, int]]] = None
        self.pack = TRANSFORMS.build(pack_cfg or dict(type='PackFewShotInputs'))
        if pipeline is None:
            pipeline = episode_pipeline(self.MASK_MODE)
        if adapt_queries < 0:
            raise ValueError(f'adapt_queries must be 0 or more, got {adapt_queries}')
        self.adapt_queries = adapt_queries
        super().__init__(data_root=data_root, pipeline=build_transforms(pipeline), **kwargs)
        if adapt_queries:
            loading, after_load, augmented = split_at_mask_loading(pipeline, recipe_of(self))
            self.load_pipeline = Compose(build_transforms(loading))
            self.after_load = Compose(build_transforms(after_load))
            self.pseudo_query_pipeline = Compose(build_transforms(augmented))

    # ----------------------------------------------------------------- layout hooks
    def load_layout(self) -> Tuple[List[List[ImageRecord]], Optional[List[Tuple[int, int]]]]:
        """Read the layout under ``data_root`` and fill ``self.class_dirs``.

        ``class_dirs`` holds, per class, the folder its images are listed from (named
        when a class has too few images).

        Returns:
            ``class_pools``: the images of every class (index = class id) in the official
            loader's order, each ``dict(img_path, seg_map_path)``; and ``queries``: the
            fixed query list as (class id, index in that class's pool), or ``None`` for
            datasets whose episodes cycle through the classes.
        """
        raise NotImplementedError

    def official_support_candidates(self, class_id: int, query: ImageRecord) -> List[ImageRecord]:
        """What the official loader draws supports from (the class's pool)."""
        return self.class_pools[class_id]

    def image_results(self, image: ImageRecord, class_id: int, episode: int) -> dict:
        """The pipeline input for one image of an episode."""
        return dict(img_path=image['img_path'], seg_map_path=image['seg_map_path'], class_id=class_id,
                    episode=episode, episode_seed=self.seed, seg_fields=[])

    # ------------------------------------------------------------------ episodes
    def default_num_episodes(self) -> Optional[int]:
        """Episodes when ``num_episodes`` is not given; ``None`` means one per query."""
        return self.DEFAULT_NUM_EPISODES

    @property
    def num_episodes(self) -> int:
        """Table length: the ``num_episodes`` argument, the dataset default, or one per query."""
        if self._num_episodes is not None:
            return self._num_episodes
        default = self.default_num_episodes()
        return default if default is not None else len(self.queries)

    def load_data_list(self) -> List[dict]:
        self.class_pools, self.queries = self.load_layout()
        self._check_pools()
        self._check_masks()
        return self.generate_episodes(self.seed)

    def _used_classes(self) -> Sequence[int]:
        """The classes the episodes draw from."""
        return range(len(self.class_pools)) if self.queries is None else sorted({c for c, _ in self.queries})

    def _check_pools(self) -> None:
        need = 2 if self.episode_sampling == 'official' else self.shot + 1
        for c in self._used_classes():
            pool = self.class_pools[c]
            if len(pool) < need:
                raise ValueError(f'class {c} ({self.metainfo["classes"][c]}) has {len(pool)} image(s) in '
                                 f'{self.class_dirs[c]}; {self.shot}-shot {self.episode_sampling} episodes '
                                 f'need at least {need}')

    def _check_masks(self) -> None:
        """Stop on a class whose masks all decode empty (masks stored in a way the rule misses).

        Per class, the masks are decoded in pool order with the pipeline's
        ``LoadBinaryMask`` until one has foreground, at most :data:`MASK_CHECK_READS` of
        them. Class-index maps (``mode='label'``) need no decoding rule and are not read.
        """
        loader = next((t for t in self.pipeline.transforms
                       if isinstance(t, LoadBinaryMask) and t.mode == 'threshold'), None)
        if loader is None:
            return
        for c in self._used_classes():
            images = self.class_pools[c][:MASK_CHECK_READS]
            if not any(loader.transform(self.image_results(img, c, 0))['gt_seg_map'].any() for img in images):
                raise ValueError(
                    f'class {c} ({self.metainfo["classes"][c]}): the first {len(images)} mask(s) in '
                    f'{os.path.dirname(images[0]["seg_map_path"])} have no foreground pixel ({MASK_RULE}, '
                    f'threshold {loader.threshold}); check how the masks are stored')

    def generate_episodes(self, seed: int) -> List[dict]:
        """The episode table for ``seed`` under this dataset's ``episode_sampling``."""
        official = self.episode_sampling == 'official'
        rng = np.random.RandomState(seed) if official else np.random.default_rng(seed)
        return [self.draw_episode(i, rng, official) for i in range(self.num_episodes)]

    def draw_episode(self, index: int, rng: Union[LegacyRNG, np.random.Generator], official: bool) -> dict:
        """Episode ``index``: ``dict(episode, class_id, query, supports)``, consuming ``rng``.

        ``official=True`` needs a legacy generator (a ``RandomState`` or the ``np.random``
        module for the global state), ``False`` a ``numpy.random.Generator``.
        """
        if self.queries is None:
            class_id = index % len(self.class_pools)
            pool = self.class_pools[class_id]
            q = int(rng.choice(len(pool), 1, replace=False)[0]) if official else int(rng.integers(len(pool)))
        else:
            class_id, q = self.queries[index % len(self.queries)]
        query = self.class_pools[class_id][q]
        if official:
            supports = self._official_supports(rng, class_id, query)
        else:
            pool = self.class_pools[class_id]
            picks = rng.choice(len(pool) - 1, self.shot, replace=False)
            supports = [pool[p + (p >= q)] for p in picks.tolist()]
        return dict(episode=index, class_id=class_id, query=query, supports=supports)

    def _official_supports(self, rng: LegacyRNG, class_id: int, query: ImageRecord) -> List[ImageRecord]:
        candidates = self.official_support_candidates(class_id, query)
        supports: List[ImageRecord] = []
        while len(supports) < self.shot:
            support = candidates[rng.choice(len(candidates), 1, replace=False)[0]]
            if support['img_path'] != query['img_path']:
                supports.append(support)
        return supports

    def set_epoch(self, epoch: int) -> None:
        """New supports every training epoch: the table of ``seed + epoch`` (epoch 0 keeps the first table).

        The official source training reseeds its sampling every epoch, so a query meets new
        supports each time (:class:`~ifa_mmseg.engine.EpisodeResampleHook` calls this).
        """
        self.data_list = self.generate_episodes(self.seed + epoch)
        if self.serialize_data:
            self.data_bytes, self.data_address = self._serialize_data()

    # -------------------------------------------------------------------- items
    def prepare_data(self, idx: int) -> Optional[dict]:
        info = self.get_data_info(idx)
        class_id, episode = info['class_id'], info['episode']
        query = self.pipeline(self.image_results(info['query'], class_id, episode))
        if not self.adapt_queries:
            return pack_episode(self.pack, query,
                                [self.pipeline(self.image_results(s, class_id, episode)) for s in info['supports']])
        # each support is decoded once: the plain support and its pseudo-queries start from the same load
        loaded = [self.load_pipeline(self.image_results(s, class_id, episode)) for s in info['supports']]
        pseudo, sources = draw_pseudo_queries(loaded, self.pseudo_query_pipeline, self.adapt_queries,
                                              item_seed(self.seed, episode))
        supports = [self.after_load(copy.deepcopy(r)) for r in loaded]
        return pack_episode(self.pack, query, supports, pseudo, sources)


def pack_episode(pack: Any, query: Optional[dict], supports: List[Optional[dict]],
                 pseudo_queries: Sequence[dict] = (), pseudo_sources: Sequence[int] = ()) -> Optional[dict]:
    """``pack(dict(query, supports[, pseudo_queries, pseudo_sources]))``, or ``None`` when a pipeline dropped
    an image (mmengine refetches)."""
    if query is None or any(s is None for s in supports):
        return None
    episode = dict(query=query, supports=supports)
    if pseudo_queries:
        episode.update(pseudo_queries=list(pseudo_queries), pseudo_sources=list(pseudo_sources))
    return pack(episode)
