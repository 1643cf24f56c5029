from .episode_resample_hook import EpisodeResampleHook
from .visualization_hook import FewShotVisualizationHook

__all__ = ['EpisodeResampleHook', 'FewShotVisualizationHook']
