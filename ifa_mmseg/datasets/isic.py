"""ISIC 2018 skin-lesion episodes, images sorted into diagnosis folders 1/2/3."""
import os
from typing import List, Tuple

from mmseg.registry import DATASETS

from .base_fewshot import BaseFewShotDataset, ImageRecord
from .layout import image_mask_pool, require_dir

CONVERTER = 'python tools/dataset_converters/isic.py ISIC_DOWNLOAD_DIR DATA_ROOT'
# the layout under data_root, made by the CONVERTER: class folders 1/2/3 in IMAGE_DIR, every mask in MASK_DIR
BASE_DIR = 'ISIC'
IMAGE_DIR = 'ISIC2018_Task1-2_Training_Input'
MASK_DIR = 'ISIC2018_Task1_Training_GroundTruth'
MASK_SUFFIX = '_segmentation.png'  # ISIC_<id>.jpg -> ISIC_<id>_segmentation.png


@DATASETS.register_module()
class ISICDataset(BaseFewShotDataset):
    """ISIC 2018 Task 1 episodes (official ``data/isic.py``, ``DatasetISIC``): 600 by default, class ``i mod 3``.

    Layout (folders 1/2/3 made by ``tools/dataset_converters/isic.py`` from the shipped
    ``splits/isic/class_id.csv``)::

        data_root/ISIC/ISIC2018_Task1-2_Training_Input/<1|2|3>/ISIC_<id>.jpg
        data_root/ISIC/ISIC2018_Task1_Training_GroundTruth/ISIC_<id>_segmentation.png

    Masks are read from the ground-truth root, not from class folders.

    Args:
        **kwargs: see :class:`BaseFewShotDataset`.
    """

    METAINFO = dict(classes=('nevus', 'seborrheic_keratosis', 'melanoma'), official_num_classes=3)
    FOLDERS = ('1', '2', '3')

    def load_layout(self) -> Tuple[List[List[ImageRecord]], None]:
        base = os.path.join(self.data_root, BASE_DIR)
        hint = f'make the ISIC class folders with: {CONVERTER}'
        truth = require_dir(os.path.join(base, MASK_DIR), hint)
        pools = []
        self.class_dirs = []
        for folder in self.FOLDERS:
            images = require_dir(os.path.join(base, IMAGE_DIR, folder), hint)
            pools.append(image_mask_pool(images, truth, lambda name: name.split('.')[0] + MASK_SUFFIX, 'ISIC mask(s)'))
            self.class_dirs.append(images)
        return pools, None
