from .checkpoint_hook import FewShotCheckpointHook
from .episode_resample_hook import EpisodeResampleHook
from .logger_hook import FewShotLoggerHook
from .non_finite_hook import NonFiniteCheckHook
from .visualization_hook import FewShotVisualizationHook

__all__ = ['EpisodeResampleHook', 'FewShotCheckpointHook', 'FewShotLoggerHook', 'FewShotVisualizationHook',
           'NonFiniteCheckHook']
