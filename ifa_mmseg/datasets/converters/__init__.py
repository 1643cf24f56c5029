"""Dataset preparation: turn the datasets as downloaded into the layouts the official ``data/*.py`` loaders read.

Each module holds the logic and a ``main(argv)``; the command-line entry points
are the thin scripts in ``tools/dataset_converters/``. Only numpy, OpenCV,
Pillow and tqdm are used here.
"""
from ...utils.errors import ConversionError
from .chestxray import check_chestxray
from .deepglobe import prepare_deepglobe
from .isic import prepare_isic

__all__ = ['ConversionError', 'check_chestxray', 'prepare_deepglobe', 'prepare_isic']
