"""Deterministic weights in the layout of the official HSNet and PATNet checkpoints, and our models built on them.

The official code is run once on these weights (tests/fixtures/official_hypercorr/README.md); the tests rebuild
them here. Every tensor is drawn from a generator seeded by its official key (as ``official_recipe``).
"""
import copy
import math
from collections import OrderedDict
from typing import Dict

import torch
from mmengine import Config
from mmseg.registry import MODELS

from ifa_mmseg.models import convert_hypercorr
from ifa_mmseg.utils.official_recipe import _gen, torchvision_state_dict

# hsnet/patnet ``model/learner.py`` ``HPNLearner`` for R-50: block -> (input channels, output channels, kernels)
LEARNER_BLOCKS = dict(encoder_layer4=(3, (16, 64, 128), (3, 3, 3)),
                      encoder_layer3=(6, (16, 64, 128), (5, 3, 3)),
                      encoder_layer2=(4, (16, 64, 128), (5, 5, 3)),
                      encoder_layer4to3=(128, (128,) * 3, (3,) * 3),
                      encoder_layer3to2=(128, (128,) * 3, (3,) * 3))
# decoder convolutions (3x3): name -> (output, input channels)
DECODER_CONVS = {'decoder1.0': (128, 128), 'decoder1.2': (64, 128), 'decoder2.0': (64, 64), 'decoder2.2': (2, 64)}
# PATNet ``reference_layer{1,2,3}``: nn.Linear(C, 2) per layer group
ANCHOR_CHANNELS = {1: 512, 2: 1024, 3: 2048}


def _randn(name: str, shape, scale: float, offset: float = 0.0) -> torch.Tensor:
    return offset + scale * torch.randn(shape, generator=_gen(name))


def _conv(sd: Dict[str, torch.Tensor], prefix: str, out: int, inp: int, kernel: int) -> None:
    sd[f'{prefix}.weight'] = _randn(f'{prefix}.weight', (out, inp, kernel, kernel), math.sqrt(2 / (inp * kernel ** 2)))
    sd[f'{prefix}.bias'] = _randn(f'{prefix}.bias', (out, ), 0.1)


def official_state_dict(model: str, data_parallel: bool = True) -> 'OrderedDict[str, torch.Tensor]':
    """The ``best_model.pt`` of the official ``train.py`` for ``model`` ``'hsnet'``/``'patnet'`` (R-50).

    ``backbone.*`` (torchvision ResNet-50 with ``fc``), ``hpn_learner.*`` and for PATNet
    ``reference_layer{1,2,3}.{weight,bias}``; with ``data_parallel`` every key starts with ``module.``, as
    ``Logger.save_model_miou`` saves the nn.DataParallel-wrapped model.
    """
    sd: 'OrderedDict[str, torch.Tensor]' = OrderedDict(
        (f'backbone.{k}', v) for k, v in torchvision_state_dict(50).items())
    if model == 'patnet':
        for i, c in ANCHOR_CHANNELS.items():  # official init: kaiming normal (fan_in, linear), zero bias
            sd[f'reference_layer{i}.weight'] = _randn(f'reference_layer{i}.weight', (2, c), 1 / math.sqrt(c))
            sd[f'reference_layer{i}.bias'] = torch.zeros(2)
    for block, (inp, outs, kernels) in LEARNER_BLOCKS.items():
        for j, (out, kernel) in enumerate(zip(outs, kernels)):
            prefix = f'hpn_learner.{block}.{3 * j}'
            _conv(sd, f'{prefix}.conv1', out, inp, kernel)
            _conv(sd, f'{prefix}.conv2', out, inp, kernel)
            norm = f'hpn_learner.{block}.{3 * j + 1}'
            sd[f'{norm}.weight'] = _randn(f'{norm}.weight', (out, ), 0.1, offset=1.0)
            sd[f'{norm}.bias'] = _randn(f'{norm}.bias', (out, ), 0.1)
            inp = out
    for name, (out, inp) in DECODER_CONVS.items():
        _conv(sd, f'hpn_learner.{name}', out, inp, 3)
    # these random weights favour the foreground by about one logit: even it out, so that both classes are predicted
    sd['hpn_learner.decoder2.2.bias'] = torch.tensor([0.95, 0.0])
    if data_parallel:
        sd = OrderedDict((f'module.{k}', v) for k, v in sd.items())
    return sd


def hypercorr_cfg(root: str, model: str) -> Config:
    """``configs/_base_/models/{model}_r50.py``'s model, without its ImageNet initialisation."""
    cfg = copy.deepcopy(Config.fromfile(f'{root}/configs/_base_/models/{model}_r50.py').model)
    cfg.backbone.init_cfg = None
    return cfg


def build_hypercorr(root: str, model: str) -> torch.nn.Module:
    """Our ``model`` (``'hsnet'``/``'patnet'``) from its base config, with the recipe weights loaded strictly
    through the converter."""
    segmentor = MODELS.build(hypercorr_cfg(root, model))
    segmentor.load_state_dict(convert_hypercorr(official_state_dict(model), segmentor.state_dict(), model))
    return segmentor
