"""PASCAL-5i (VOC 2012 + SBD) episodes with HSNet's split lists, the IFA source domain."""
import os
from typing import List, Optional, Tuple

from mmseg.registry import DATASETS

from .base_fewshot import BaseFewShotDataset, ImageRecord
from .layout import SPLITS_DIR, LayoutError, read_lines

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
               'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
               'tvmonitor')
NUM_FOLDS = 4
# where VOC2012 may sit under data_root: HSNet's layout, then mmseg's (tools/dataset_converters/voc_aug.py)
VOC_LAYOUTS = (('VOC2012', ), ('VOCdevkit', 'VOC2012'))
VOC_SUBDIRS = ('JPEGImages', 'SegmentationClassAug')


@DATASETS.register_module()
class Pascal5iDataset(BaseFewShotDataset):
    """PASCAL-5i episodes (official ``data/pascal.py``, ``DatasetPASCAL``; ``train.py`` uses ``fold=4``).

    Layout: ``data_root/VOC2012/JPEGImages/<name>.jpg`` and
    ``data_root/VOC2012/SegmentationClassAug/<name>.png`` (class-index maps, 255 on
    boundaries); mmseg's ``data_root/VOCdevkit/VOC2012/...`` is read when the first is absent. The episodes walk the HSNet list ``<split>/fold<f>.txt`` (lines
    ``<name>__<CC>``, class id ``CC - 1``) shipped in ``ifa_mmseg/datasets/splits/pascal``:

    * ``split='trn'``: the lists of every fold except ``fold``; ``fold=4`` (the IFA source
      training) keeps all four, i.e. all 20 classes and 13,680 (image, class) pairs. One
      episode per pair by default.
    * ``split='val'`` (or ``'test'``): the list of ``fold`` (0-3); 1,000 episodes by
      default, cycling through the list as the official loader.

    Supports come from the images listed for the query's class. The mask is the query
    class's pixels; every other label, the 255 boundaries included, is background.

    Args:
        fold: 0-3, or 4 for all classes (training only).
        split: ``'trn'``, ``'val'`` or ``'test'``.
        **kwargs: see :class:`BaseFewShotDataset`.
    """

    METAINFO = dict(classes=VOC_CLASSES)
    MASK_MODE = 'label'

    def __init__(self, data_root: str, fold: int = 4, split: str = 'trn', **kwargs) -> None:
        if split not in ('trn', 'val', 'test'):
            raise ValueError(f"split must be 'trn', 'val' or 'test', got {split!r}")
        if fold not in range(NUM_FOLDS + 1):
            raise ValueError(f'fold must be 0-{NUM_FOLDS}, got {fold}')
        self.split = 'trn' if split == 'trn' else 'val'
        if self.split == 'val' and fold == NUM_FOLDS:
            raise ValueError(f'fold {NUM_FOLDS} holds all classes for training; it has no validation list')
        self.fold = fold
        super().__init__(data_root, **kwargs)

    def default_num_episodes(self) -> Optional[int]:
        return None if self.split == 'trn' else 1000

    def voc_root(self) -> str:
        """``data_root/VOC2012`` (HSNet layout) or ``data_root/VOCdevkit/VOC2012`` (mmseg's ``voc_aug.py``).

        The first that holds both ``JPEGImages`` and ``SegmentationClassAug`` is read.
        """
        candidates = [os.path.join(self.data_root, *parts) for parts in VOC_LAYOUTS]
        for root in candidates:
            if all(os.path.isdir(os.path.join(root, sub)) for sub in VOC_SUBDIRS):
                return root
        found = [os.path.join(root, sub) for root in candidates for sub in VOC_SUBDIRS
                 if os.path.isdir(os.path.join(root, sub))]
        raise LayoutError(
            f'PASCAL-5i: neither layout found under data_root={self.data_root}: it needs JPEGImages and the '
            'SBD-augmented SegmentationClassAug (class-index PNGs) in one of\n'
            + ''.join(f'  {os.path.join(root, "{" + ",".join(VOC_SUBDIRS) + "}")}\n' for root in candidates)
            + '(the first is HSNet\'s layout, the second what mmseg\'s tools/dataset_converters/voc_aug.py '
            'writes); ' + (f'found only {", ".join(found)}' if found else 'found neither folder'))

    def load_layout(self) -> Tuple[List[List[ImageRecord]], List[Tuple[int, int]]]:
        root = self.voc_root()
        img_dir, ann_dir = (os.path.join(root, sub) for sub in VOC_SUBDIRS)
        folds = [f for f in range(NUM_FOLDS) if f != self.fold] if self.split == 'trn' else [self.fold]
        pools: List[List[ImageRecord]] = [[] for _ in VOC_CLASSES]
        self.class_dirs = [img_dir] * len(VOC_CLASSES)  # the split lists pick every class's images there
        queries = []
        for f in folds:
            for line in read_lines(SPLITS_DIR / 'pascal' / self.split / f'fold{f}.txt'):
                name, cc = line.split('__')
                class_id = int(cc) - 1
                queries.append((class_id, len(pools[class_id])))
                pools[class_id].append(dict(img_path=os.path.join(img_dir, name + '.jpg'),
                                            seg_map_path=os.path.join(ann_dir, name + '.png')))
        return pools, queries

    def image_results(self, image: ImageRecord, class_id: int, episode: int) -> dict:
        return dict(super().image_results(image, class_id, episode), mask_label=class_id + 1)
