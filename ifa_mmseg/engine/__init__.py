from .hooks import EpisodeResampleHook, FewShotCheckpointHook, FewShotVisualizationHook
from .multi_seed_test_loop import MultiSeedTestLoop, mean_ci95

__all__ = ['EpisodeResampleHook', 'FewShotCheckpointHook', 'FewShotVisualizationHook', 'MultiSeedTestLoop', 'mean_ci95']
