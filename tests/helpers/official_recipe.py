"""The test recipe's weights and episodes; they live in the package (``ifa_mmseg.utils.official_recipe``)
so that the analysis tools can use them without importing from ``tests/``."""
from ifa_mmseg.utils.official_recipe import (STAGE_BLOCKS, imagenet_state_dict, make_episodes,  # noqa: F401
                                             official_trained_state_dict)
