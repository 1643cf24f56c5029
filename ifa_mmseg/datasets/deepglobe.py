"""DeepGlobe land-cover episodes in IFA's preprocessed layout (six binary classes)."""
import os
import re
from typing import List, Tuple

from mmseg.registry import DATASETS

from .base_fewshot import BaseFewShotDataset, ImageRecord
from .layout import LayoutError, image_mask_pool, require_dir

CONVERTER = 'python tools/dataset_converters/deepglobe.py KAGGLE_TRAIN_DIR DATA_ROOT'
# the layout under data_root, made by the CONVERTER: class folders <1..6> in BASE_DIR, each with the two below
BASE_DIR = os.path.join('Deepglobe', '04_train_cat')
IMAGE_DIR = os.path.join('test', 'origin')
MASK_DIR = os.path.join('test', 'groundtruth')
_IMAGE_NAME = re.compile(r'(?P<id>.+)_sat_(?P<cell>\d\d)\.jpg')


def tile_names(image_id: str, cell: str) -> Tuple[str, str]:
    """IFA's names ``(<id>_sat_<ij>.jpg, <id>_mask_<ij>.png)`` of the tile in row i, column j (``cell='ij'``)."""
    return f'{image_id}_sat_{cell}.jpg', f'{image_id}_mask_{cell}.png'


def deepglobe_mask_name(image_name: str) -> str:
    """``<id>_sat_<ij>.jpg`` -> ``<id>_mask_<ij>.png`` (official ``DatasetDeepglobe.load_frame``; not PATNet's)."""
    match = _IMAGE_NAME.fullmatch(image_name)
    if match is None:
        raise LayoutError(f'unexpected Deepglobe image name {image_name!r}: expected <id>_sat_<ij>.jpg '
                          f'(run {CONVERTER})')
    return tile_names(match['id'], match['cell'])[1]


@DATASETS.register_module()
class DeepglobeDataset(BaseFewShotDataset):
    """DeepGlobe episodes (official ``data/deepglobe.py``, ``DatasetDeepglobe``): 600 by default, class ``i mod 6``.

    Layout (made by ``tools/dataset_converters/deepglobe.py``)::

        data_root/Deepglobe/04_train_cat/<1..6>/test/origin/<id>_sat_<ij>.jpg
        data_root/Deepglobe/04_train_cat/<1..6>/test/groundtruth/<id>_mask_<ij>.png

    A tile appears in the folder of every class it contains; its mask in that folder
    marks the class (white = foreground, threshold 128).

    Args:
        **kwargs: see :class:`BaseFewShotDataset`.
    """

    # pseudo_query: official data/deepglobe_IFA.py flips with probability 0.8 and adds a 2x2 grid shuffle
    METAINFO = dict(classes=('agriculture', 'urban', 'rangeland', 'forest', 'water', 'barren'),
                    official_num_classes=6, pseudo_query=dict(flip_prob=0.8, grid_shuffle=True))
    FOLDERS = ('1', '2', '3', '4', '5', '6')

    def load_layout(self) -> Tuple[List[List[ImageRecord]], None]:
        base = os.path.join(self.data_root, BASE_DIR)
        hint = f'make the Deepglobe layout with: {CONVERTER}'
        pools = []
        self.class_dirs = []
        for folder in self.FOLDERS:
            origin = require_dir(os.path.join(base, folder, IMAGE_DIR), hint)
            truth = require_dir(os.path.join(base, folder, MASK_DIR), hint)
            pools.append(image_mask_pool(origin, truth, deepglobe_mask_name, 'Deepglobe mask(s)', hint))
            self.class_dirs.append(origin)
        return pools, None
