"""Episodic few-shot datasets in the published layouts, IFA adaptation episodes, and transforms."""
from . import transforms  # noqa: F401
from .adaptation import IFAAdaptationDataset
from .base_fewshot import BaseFewShotDataset, episode_pipeline
from .chestxray import ChestXrayDataset
from .collate import fewshot_collate
from .deepglobe import DeepglobeDataset
from .fss1000 import FSS1000Dataset
from .isic import ISICDataset
from .layout import LayoutError
from .pascal import Pascal5iDataset
from .pseudo_query import ifa_augmentations, ifa_query_pipeline
from .synthetic import make_synthetic_benchmark

__all__ = [
    'BaseFewShotDataset', 'ChestXrayDataset', 'DeepglobeDataset', 'FSS1000Dataset', 'IFAAdaptationDataset',
    'ISICDataset', 'LayoutError', 'Pascal5iDataset', 'episode_pipeline', 'fewshot_collate', 'ifa_augmentations',
    'ifa_query_pipeline', 'make_synthetic_benchmark'
]
