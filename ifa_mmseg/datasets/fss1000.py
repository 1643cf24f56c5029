"""FSS-1000 episodes (HSNet's copy and class splits): every image of the split is a query once."""
import os
from pathlib import Path
from typing import List, Tuple

from mmseg.registry import DATASETS

from .base_fewshot import BaseFewShotDataset, ImageRecord
from .layout import LayoutError, SPLITS_DIR, first_missing_message, image_mask_pool, read_lines

BASE_DIR = 'FSS-1000'  # under data_root, one folder per class (HSNet's layout)
SPLIT_OFFSETS = dict(trn=0, val=520, test=760)


@DATASETS.register_module()
class FSS1000Dataset(BaseFewShotDataset):
    """FSS-1000 episodes (official ``data/fss.py``, ``DatasetFSS``).

    Layout: ``data_root/FSS-1000/<class>/<n>.jpg`` with the mask ``<n>.png`` beside it.
    The classes are the (sorted) lines of the split list: HSNet's ``trn`` (520 classes),
    ``val`` (240) or ``test`` (240), shipped in ``ifa_mmseg/datasets/splits/fss``, or the
    list in ``ann_file``. Episode ``i`` takes the ``i``-th image of the split (classes in
    order, images in string order 1, 10, 2, ...) as query, so the default length is the
    number of images; supports come from the query's class.

    The official scripts evaluate on ``val``, PATNet and most papers on ``test``. The
    official class numbering adds 520 (val) or 760 (test) to ``class_id``
    (:data:`SPLIT_OFFSETS`). With ``episode_sampling='official'`` supports are drawn
    from ``1.jpg`` ... ``10.jpg`` of the query's folder, as the official loader.

    Args:
        split: ``'trn'``, ``'val'`` or ``'test'``.
        ann_file: a class list replacing the shipped one (relative to ``data_root``).
        **kwargs: see :class:`BaseFewShotDataset`.
    """

    METAINFO = dict(classes=(), official_num_classes=1000)
    DEFAULT_NUM_EPISODES = None
    # every image of the split is a query, so the labelled adaptation pool comes from the training classes
    ADAPTATION = dict(official_episodes=520, pool_split='trn')

    def __init__(self, data_root: str, split: str = 'test', ann_file: str = '', **kwargs) -> None:
        if split not in SPLIT_OFFSETS:
            raise ValueError(f"split must be 'trn', 'val' or 'test', got {split!r}")
        self.split = split
        super().__init__(data_root, ann_file=ann_file, **kwargs)

    def load_layout(self) -> Tuple[List[List[ImageRecord]], List[Tuple[int, int]]]:
        class_list = Path(self.ann_file) if self.ann_file else SPLITS_DIR / 'fss' / f'{self.split}.txt'
        classes = sorted(read_lines(class_list))
        self._metainfo.update(classes=tuple(classes), official_class_offset=SPLIT_OFFSETS[self.split])
        base = os.path.join(self.data_root, BASE_DIR)
        folders = [os.path.join(base, c) for c in classes]
        absent = [f for f in folders if not os.path.isdir(f)]
        if absent:
            raise LayoutError(first_missing_message(
                absent, f'FSS-1000 class folder(s) of {class_list}',
                f'FSS-1000 is read in HSNet\'s layout: data_root/{BASE_DIR}/<class>/<n>.jpg with <n>.png masks'))
        pools = [image_mask_pool(folder, folder, lambda name: name.split('.')[0] + '.png', 'FSS-1000 mask(s)')
                 for folder in folders]
        empty = [f for f, pool in zip(folders, pools) if not pool]  # a class without queries would silently vanish
        if empty:
            raise LayoutError(f'{len(empty)} FSS-1000 class folder(s) of {class_list} hold no .jpg image, '
                              f'e.g. {empty[0]}')
        self.class_dirs = folders
        queries = [(c, j) for c, pool in enumerate(pools) for j in range(len(pool))]
        return pools, queries

    def official_support_candidates(self, class_id: int, query: ImageRecord) -> List[ImageRecord]:
        folder = os.path.dirname(query['img_path'])
        return [dict(img_path=os.path.join(folder, f'{n}.jpg'), seg_map_path=os.path.join(folder, f'{n}.png'))
                for n in range(1, 11)]
