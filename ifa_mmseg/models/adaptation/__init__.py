from .episode_adapter import ELEMENTWISE_OPTIMIZERS, EpisodeAdapter, Params, episode_features

__all__ = ['ELEMENTWISE_OPTIMIZERS', 'EpisodeAdapter', 'Params', 'episode_features']
