"""A frozen ResNet that returns the output of every bottleneck, as HSNet and PATNet read their features."""
from typing import Any, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from .ifa_resnet import IFAResNet, conv_bn


@MODELS.register_module()
class MultiLayerResNet(IFAResNet):
    """torchvision's ResNet-50/101, frozen, returning every bottleneck output of the chosen stages.

    HSNet and PATNet correlate the output of each bottleneck block, taken after the residual sum
    and before the block's last ReLU (hsnet ``model/base/feature.py`` ``extract_feat_res``). Their
    backbone is torchvision's ``resnet50``/``resnet101``: a 7x7 stem, four stages of strides
    (1, 2, 2, 2) with the stride on the 3x3 convolution (mmseg ``style='pytorch'``), no dilation.
    Its weight names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ...; no ``fc``), so
    torchvision's ImageNet file loads as it is.

    Every weight is frozen and every BatchNorm stays in eval mode on its running statistics
    (folded into its convolution, see :class:`IFAResNet`); the forward builds no autograd graph,
    as the official code extracts features under ``torch.no_grad``.

    Args:
        depth: 50 or 101.
        out_indices: stages (0-based) whose bottleneck outputs are returned, shallow to deep.
            The default (1, 2, 3) gives layers 2-4, HSNet's ``feat_ids``: 13 maps for R-50
            (4 + 6 + 3), 30 for R-101 (4 + 23 + 3).
        **kwargs: any other :class:`mmseg.models.backbones.ResNet` argument except the layout.
    """

    def __init__(self, depth: int = 50, out_indices: Sequence[int] = (1, 2, 3), **kwargs: Any) -> None:
        super().__init__(depth=depth, stem_channels=64, num_stages=4, strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1),
                         out_indices=tuple(out_indices), deep_stem=False, contract_dilation=False,
                         frozen_stages=4, style='pytorch', **kwargs)
        for name in self.res_layers:
            for block in getattr(self, name):
                block.out_relu = False  # forward reads the block output, then applies the ReLU itself

    @property
    def num_blocks(self) -> Tuple[int, ...]:
        """Maps returned per stage of ``out_indices``, e.g. (4, 6, 3) for R-50."""
        return tuple(self.stage_blocks[i] for i in self.out_indices)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """[N, 3, H, W] -> the bottleneck outputs [N, C_l, h_l, w_l] of ``out_indices``, shallow to deep."""
        x = self.maxpool(self.relu(conv_bn(self.conv1, self.norm1, x)))
        feats = []
        for i, name in enumerate(self.res_layers[:max(self.out_indices) + 1]):
            for block in getattr(self, name):
                x = block(x)
                if i in self.out_indices:
                    feats.append(x)
                x = F.relu(x)  # not in place: x may be a returned map
        return tuple(feats)
