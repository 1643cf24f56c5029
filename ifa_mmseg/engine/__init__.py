from .hooks import EpisodeResampleHook, FewShotCheckpointHook, FewShotVisualizationHook
from .multi_seed_test_loop import MultiSeedTestLoop, mean_ci95
from .protocol import ProtocolError, resolve_protocol
from .runner import FewShotRunner

__all__ = [
    'EpisodeResampleHook', 'FewShotCheckpointHook', 'FewShotRunner', 'FewShotVisualizationHook', 'MultiSeedTestLoop',
    'ProtocolError', 'mean_ci95', 'resolve_protocol'
]
