"""The truncated, dilated deep-stem ResNet of SSP/IFA as an mmseg ``ResNet``."""
from typing import Any

import torch
import torch.utils.checkpoint as cp
from mmseg.models.backbones.resnet import Bottleneck, ResNet
from mmseg.registry import MODELS
from torch import Tensor


class BottleneckNoOutReLU(Bottleneck):
    """Bottleneck without the ReLU after the residual sum.

    SSP/IFA drop it on the last block of the feature stage, so the features fed to
    the cosine similarities can be negative.
    """

    def forward(self, x: Tensor) -> Tensor:
        def _inner_forward(x: Tensor) -> Tensor:
            out = self.relu(self.norm1(self.conv1(x)))
            out = self.relu(self.norm2(self.conv2(out)))
            out = self.norm3(self.conv3(out))
            identity = x if self.downsample is None else self.downsample(x)
            return out + identity

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner_forward, x, use_reentrant=False)
        return _inner_forward(x)


@MODELS.register_module()
class IFAResNet(ResNet):
    """ResNet-50/101 as used by SSP and IFA (``model/resnet.py`` of the official code).

    Deep stem 64-64-128, stages 1-3 only, stage 3 dilated (output stride 8), no ReLU
    after the last block of the last stage, stem and stage 1 frozen, every
    BatchNorm frozen: affine parameters have ``requires_grad=False`` and the layers
    stay in eval mode even in ``train()`` (``norm_eval``), so statistics never move.

    Args:
        depth (int): 50 or 101.
        out_relu (bool): Keep the ReLU after the last block. Default False (official).
        **kwargs: Any other :class:`mmseg.models.backbones.ResNet` argument.
    """

    def __init__(self,
                 depth: int = 50,
                 out_relu: bool = False,
                 stem_channels: int = 128,
                 num_stages: int = 3,
                 strides: tuple = (1, 2, 1),
                 dilations: tuple = (1, 1, 2),
                 out_indices: tuple = (2,),
                 deep_stem: bool = True,
                 contract_dilation: bool = True,
                 frozen_stages: int = 1,
                 norm_cfg: dict = dict(type='BN', requires_grad=False),
                 norm_eval: bool = True,
                 **kwargs: Any) -> None:
        if depth not in (50, 101):
            raise ValueError(f'IFAResNet supports depth 50 or 101 (bottleneck blocks), got {depth}')
        if kwargs.get('plugins') or kwargs.get('dcn'):
            raise ValueError('IFAResNet does not support plugins or dcn')
        super().__init__(
            depth=depth, stem_channels=stem_channels, num_stages=num_stages, strides=strides,
            dilations=dilations, out_indices=out_indices, deep_stem=deep_stem,
            contract_dilation=contract_dilation, frozen_stages=frozen_stages, norm_cfg=norm_cfg,
            norm_eval=norm_eval, **kwargs)
        if not out_relu:
            last_block = getattr(self, self.res_layers[-1])[-1]
            last_block.__class__ = BottleneckNoOutReLU

    def train(self, mode: bool = True) -> 'IFAResNet':
        # mmseg's ResNet.train returns None, which breaks ``model.eval()`` chaining
        super().train(mode)
        return self

    @torch.no_grad()
    def _frozen_forward(self, x: Tensor) -> Tensor:
        """Stem and frozen stages: no graph is built, as in the official code."""
        x = self.stem(x) if self.deep_stem else self.relu(self.norm1(self.conv1(x)))
        x = self.maxpool(x)
        for name in self.res_layers[:self.frozen_stages]:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: Tensor) -> tuple:
        x = self._frozen_forward(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            if i >= self.frozen_stages:
                x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
