from .hooks import EpisodeResampleHook, FewShotVisualizationHook
from .multi_seed_test_loop import MultiSeedTestLoop, mean_ci95

__all__ = ['EpisodeResampleHook', 'FewShotVisualizationHook', 'MultiSeedTestLoop', 'mean_ci95']
