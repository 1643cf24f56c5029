from .hooks import FewShotVisualizationHook
from .multi_seed_test_loop import MultiSeedTestLoop, mean_ci95

__all__ = ['FewShotVisualizationHook', 'MultiSeedTestLoop', 'mean_ci95']
