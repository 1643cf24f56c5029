"""Per-image transforms of the episode pipelines and the episode packer."""
from .augment import HueSaturationValue, RandomBrightnessContrast, RandomGridShuffle, RandomRotate90
from .formatting import PackFewShotInputs
from .loading import LoadBinaryMask, LoadRGBImageFromFile, UnreadableFileError
from .resize import FewShotResize, legacy_nearest

__all__ = [
    'FewShotResize', 'HueSaturationValue', 'LoadBinaryMask', 'LoadRGBImageFromFile', 'PackFewShotInputs',
    'RandomBrightnessContrast', 'RandomGridShuffle', 'RandomRotate90', 'UnreadableFileError', 'legacy_nearest'
]
