from .episode_adapter import (ELEMENTWISE_OPTIMIZERS, ENGINES, EPISODE_RECIPES, NORM_LAYERS, EpisodeAdapter, Params,
                              adapted_features, episode_adaptation_settings)
from .feature_split import BACKBONE_BLOCKS, Block, FeatureSplit, backbone_blocks, register_blocks

__all__ = ['ELEMENTWISE_OPTIMIZERS', 'ENGINES', 'EPISODE_RECIPES', 'NORM_LAYERS', 'EpisodeAdapter', 'Params',
           'adapted_features', 'episode_adaptation_settings', 'BACKBONE_BLOCKS',
           'Block', 'FeatureSplit', 'backbone_blocks', 'register_blocks']
