"""Chest X-ray lung-segmentation episodes (Shenzhen + Montgomery, Kaggle layout)."""
import os
from typing import List, Tuple

from mmseg.registry import DATASETS

from .base_fewshot import BaseFewShotDataset, ImageRecord
from .layout import LayoutError, first_missing_message, list_files, missing_files, require_dir

CHECKER = 'python tools/dataset_converters/chestxray.py DATA_ROOT --fix'
# the layout under data_root, checked and repaired by the CHECKER
BASE_DIR = 'LungSegmentation'
IMAGE_DIR = 'CXR_png'
MASK_DIR = 'masks'
MASK_SUFFIX = '_mask.png'


@DATASETS.register_module()
class ChestXrayDataset(BaseFewShotDataset):
    """Chest X-ray episodes (official ``data/lung.py``, ``DatasetLung``): 600 by default, one class (lung).

    Layout::

        data_root/LungSegmentation/CXR_png/<stem>.png
        data_root/LungSegmentation/masks/<stem>_mask.png

    The episodes draw from the sorted mask list; every mask must be named
    ``<image stem>_mask.png`` and have its image. Some distributions name the
    Montgomery (``MCUCXR_*``) masks like their image, without the suffix; that is
    refused (the official loader would pair them with wrong or missing images) and
    ``tools/dataset_converters/chestxray.py --fix`` renames them. Kaggle's folder is
    ``Lung Segmentation`` (with a space); it must be ``LungSegmentation``.

    Args:
        **kwargs: see :class:`BaseFewShotDataset`.
    """

    METAINFO = dict(classes=('lung', ), official_num_classes=1)

    def load_layout(self) -> Tuple[List[List[ImageRecord]], None]:
        base = os.path.join(self.data_root, BASE_DIR)
        hint = f'check and fix the Chest X-ray layout with: {CHECKER}'
        images = require_dir(os.path.join(base, IMAGE_DIR), hint)
        masks = require_dir(os.path.join(base, MASK_DIR), hint)
        names = list_files(masks, 'png')
        unsuffixed = [n for n in names if not n.endswith(MASK_SUFFIX)]
        if unsuffixed:
            raise LayoutError(f'{len(unsuffixed)} mask(s) not named <image stem>{MASK_SUFFIX}, e.g. '
                              f'{os.path.join(masks, unsuffixed[0])} (a Montgomery-style mask without the '
                              f'suffix?)\n{hint}')
        pool = [dict(img_path=os.path.join(images, n[:-len(MASK_SUFFIX)] + '.png'),
                     seg_map_path=os.path.join(masks, n)) for n in names]
        missing = missing_files([p['img_path'] for p in pool], images)
        if missing:
            raise LayoutError(first_missing_message(missing, 'Chest X-ray image(s) of existing masks', hint))
        self.class_dirs = [masks]  # the episodes draw from the mask list
        return [pool], None
