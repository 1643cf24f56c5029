"""Models built from the repository's configs, with the recipe weights loaded."""
import copy

import torch
from mmengine import Config
from mmseg.registry import MODELS

from ifa_mmseg.models import convert_official

from .official_recipe import imagenet_state_dict

def r50_cfg(root: str, config: str = 'ifa_r50', **head):
    cfg = Config.fromfile(f'{root}/configs/_base_/models/{config}.py')
    model = copy.deepcopy(cfg.model)
    model.backbone.init_cfg = None
    for key, value in head.items():  # replace, not merge (loss_weights)
        model.decode_head[key] = value
    return model

def build_r50(root: str, config: str = 'ifa_r50', **head):
    """The official IFA R-50 model with the recipe weights (via the converter)."""
    model = MODELS.build(r50_cfg(root, config, **head))
    model.backbone.load_state_dict(convert_official(imagenet_state_dict(50), model.backbone.state_dict()))
    return model


def save_random_demo_checkpoint(root: str, path: str) -> str:
    """Write ``path``: a checkpoint of the CPU demo's model (``configs/demo/deepglobe.py``) as randomly initialised
    from seed 0, which gives distinct predictions for the tests to compare; returns ``path``."""
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(f'{root}/configs/demo/deepglobe.py').model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path
