"""Pseudo-queries: augmented copies of a labelled support, the training signal of IFA adaptation.

IFA adapts on episodes whose query is one of the supports passed through the pseudo-query
augmentations (official ``data/*_IFA.py``). Their parameters (the recipe) are a fact of the
target: ``metainfo['pseudo_query']`` of its dataset, the keyword arguments of
:func:`ifa_augmentations` (Deepglobe states its own in its ``METAINFO``, the others take the
defaults; a config may override it with ``metainfo=dict(pseudo_query=...)``), read by
:func:`recipe_of`. Whoever builds pseudo-queries places them with :func:`split_at_mask_loading`:
the pool adaptation stage (:class:`~ifa_mmseg.datasets.IFAAdaptationDataset`), the test
datasets' ``adapt_queries`` (``adaptation_labels='episode'``),
:class:`~ifa_mmseg.apis.FewShotInferencer` and the benchmarks.
"""
import copy
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS


def ifa_augmentations(flip_prob: float = 0.5, grid_shuffle: bool = False) -> List[dict]:
    """The pseudo-query augmentations of the official ``data/*_IFA.py`` loaders, as configs.

    Image and mask jointly (their ``q_transform``, built in ``Dataset*IFA.__init__``):
    horizontal and vertical flips with ``flip_prob`` each, RandomRotate90 with 0.5 and,
    for Deepglobe, a 2x2 grid shuffle; the image alone (their ``q_transform2``):
    brightness/contrast 0.2/0.2 with 0.5, then hue/saturation/value shifts 20/30/20 always.
    """
    augment = [
        dict(type='RandomFlip', prob=flip_prob, direction='horizontal'),
        dict(type='RandomFlip', prob=flip_prob, direction='vertical'),
        dict(type='RandomRotate90', prob=0.5),
    ]
    if grid_shuffle:
        augment.append(dict(type='RandomGridShuffle', grid=(2, 2), prob=1.0))
    return augment + [
        dict(type='RandomBrightnessContrast', brightness_limit=0.2, contrast_limit=0.2, prob=0.5),
        dict(type='HueSaturationValue', hue_shift_limit=20, sat_shift_limit=30, val_shift_limit=20, prob=1.0),
    ]


def recipe_of(dataset: Union[BaseDataset, Mapping]) -> Dict[str, Any]:
    """A target's pseudo-query recipe, ``metainfo['pseudo_query']`` of its dataset (built, or a config with
    ``type`` and optionally ``metainfo``); ``{}`` stands for :func:`ifa_augmentations`' defaults."""
    if isinstance(dataset, BaseDataset):
        metainfo = dataset.metainfo
    else:
        cls = DATASETS.get(dataset['type']) if isinstance(dataset['type'], str) else dataset['type']
        metainfo = cls._load_metainfo(copy.deepcopy(dataset.get('metainfo')))
    return dict(metainfo.get('pseudo_query') or {})


def split_at_mask_loading(pipeline: Sequence[dict],
                          recipe: Optional[Mapping] = None) -> Tuple[List[dict], List[dict], List[dict]]:
    """A support pipeline cut right after its ``LoadBinaryMask`` (images decoded, not yet resized).

    Args:
        pipeline: the per-image transforms (configs).
        recipe: the target's (:func:`recipe_of`); ``None``: :func:`ifa_augmentations`' defaults.

    Returns:
        ``(loading, after_load, pseudo_query)``: the transforms up to the mask loading, the
        rest, and the rest preceded by the pseudo-query augmentations, which so run at the
        original resolution, before any resize, as in the official code.
    """
    types = [t.get('type') if isinstance(t, dict) else type(t).__name__ for t in pipeline]
    if 'LoadBinaryMask' not in types:
        raise ValueError(f'cannot place the pseudo-query augmentations: no LoadBinaryMask in {types}; '
                         'give query_pipeline explicitly')
    cut = types.index('LoadBinaryMask') + 1
    loading, after_load = list(pipeline[:cut]), list(pipeline[cut:])
    return loading, after_load, [*ifa_augmentations(**(recipe or {})), *after_load]


def ifa_query_pipeline(pipeline: Sequence[dict], **recipe) -> List[dict]:
    """``pipeline`` (a support pipeline) with the pseudo-query augmentations of ``recipe`` right after its
    ``LoadBinaryMask`` (:func:`split_at_mask_loading`)."""
    loading, _, pseudo_query = split_at_mask_loading(pipeline, recipe)
    return [*loading, *pseudo_query]


def item_seed(*keys: int) -> int:
    """A 32-bit seed for one random item named by ``keys`` (e.g. seed, epoch, index): independent streams."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def draw_pseudo_queries(loaded: Sequence[dict], augment: Callable[[dict], dict], num: int,
                        seed: int) -> Tuple[List[dict], List[int]]:
    """``num`` pseudo-queries of one support set, each an augmented copy of one of its supports.

    Draw ``j`` (support 0 when there is one, else uniform), then ``augment`` a copy of
    support ``j``, ``num`` times. Every draw comes from numpy's global generator (which
    mmcv-style transforms use) seeded with ``seed``; its state is restored afterwards, so
    the result is a function of ``(loaded, seed)`` alone.

    Args:
        loaded: the supports' pipeline results right after their mask is loaded
            (:func:`split_at_mask_loading`), at the original resolution.
        augment: the pseudo-query augmentations followed by the rest of the pipeline.
        num: pseudo-queries to draw.
        seed: e.g. :func:`item_seed` of (episode seed, episode index).

    Returns:
        The augmented results and, for each, the index of the support it copies.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        queries, sources = [], []
        for _ in range(num):
            j = 0 if len(loaded) == 1 else int(np.random.randint(len(loaded)))
            query = augment(copy.deepcopy(loaded[j]))
            if query is None:
                raise ValueError(f'the pseudo-query pipeline dropped {loaded[j].get("img_path")}')
            queries.append(query)
            sources.append(j)
        return queries, sources
    finally:
        np.random.set_state(state)
