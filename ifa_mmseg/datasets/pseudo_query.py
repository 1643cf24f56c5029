"""Pseudo-queries: augmented copies of a labelled support, the training signal of IFA adaptation.

IFA adapts on episodes whose query is one of the supports passed through the pseudo-query
augmentations (official ``data/*_IFA.py``). The pool adaptation stage
(:class:`~ifa_mmseg.datasets.IFAAdaptationDataset`) and the per-episode adaptation at test
time (``adaptation_labels='episode'``: the test datasets' ``adapt_queries`` and
:class:`~ifa_mmseg.apis.FewShotInferencer`) build them with the functions here.
"""
import copy
from typing import Callable, List, Sequence, Tuple

import numpy as np


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


def mask_loaded_at(pipeline: Sequence[dict]) -> int:
    """The position right after the pipeline's ``LoadBinaryMask``: images are decoded, not yet resized."""
    types = [t.get('type') if isinstance(t, dict) else type(t).__name__ for t in pipeline]
    if 'LoadBinaryMask' not in types:
        raise ValueError(f'cannot place the pseudo-query augmentations: no LoadBinaryMask in {types}; '
                         'give query_pipeline explicitly')
    return types.index('LoadBinaryMask') + 1


def ifa_query_pipeline(pipeline: Sequence[dict], flip_prob: float = 0.5, grid_shuffle: bool = False) -> List[dict]:
    """``pipeline`` (a support pipeline) with :func:`ifa_augmentations` right after its ``LoadBinaryMask``.

    The augmentations then run at the original resolution, before any resize, as in
    the official code.
    """
    cut = mask_loaded_at(pipeline)
    return [*pipeline[:cut], *ifa_augmentations(flip_prob, grid_shuffle), *pipeline[cut:]]


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
            (:func:`mask_loaded_at`), at the original resolution.
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
