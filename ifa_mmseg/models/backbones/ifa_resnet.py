"""The truncated, dilated deep-stem ResNet of SSP/IFA as an mmseg ``ResNet``."""
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmseg.models.backbones.resnet import Bottleneck, ResNet
from mmseg.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils.memory import channels_last, cpu_chunk_size


def conv_bn(conv: nn.Module, norm: nn.Module, x: Tensor) -> Tensor:
    """``norm(conv(x))``, as one convolution when ``norm`` is a BatchNorm on running statistics.

    Such a BatchNorm (every one in IFA: frozen, eval mode) is a per-channel affine map,
    so its scale is folded into the convolution weight and its shift becomes the bias.
    The values are the same up to float rounding; the normalisation passes over the
    activation (forward and backward) disappear, and autograd no longer keeps the
    convolution output.
    """
    foldable = (type(conv) is nn.Conv2d and conv.padding_mode == 'zeros' and isinstance(norm, _BatchNorm)
                and norm.affine and not norm.training and norm.running_var is not None)
    if not foldable:
        return norm(conv(x))
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    shift = norm.bias - norm.running_mean * scale
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return F.conv2d(x, conv.weight * scale[:, None, None, None], bias, conv.stride, conv.padding, conv.dilation,
                    conv.groups)


def sequential_forward(layers: nn.Sequential, x: Tensor) -> Tensor:
    """``layers(x)`` with every convolution + BatchNorm pair run by :func:`conv_bn`."""
    mods = list(layers)
    i = 0
    while i < len(mods):
        if i + 1 < len(mods) and isinstance(mods[i + 1], _BatchNorm):
            x = conv_bn(mods[i], mods[i + 1], x)
            i += 2
        else:
            x = mods[i](x)
            i += 1
    return x


class IFABottleneck(Bottleneck):
    """mmseg's Bottleneck with its BatchNorms folded (:func:`conv_bn`).

    ``out_relu=False`` drops the ReLU after the residual sum, as SSP/IFA do on the last
    block of the feature stage, so the features fed to the cosine similarities can be
    negative.
    """

    out_relu = True

    def forward(self, x: Tensor) -> Tensor:
        def _inner_forward(x: Tensor) -> Tensor:
            out = self.relu(conv_bn(self.conv1, self.norm1, x))
            out = self.relu(conv_bn(self.conv2, self.norm2, out))
            out = conv_bn(self.conv3, self.norm3, out)
            out += x if self.downsample is None else sequential_forward(self.downsample, x)
            return self.relu(out) if self.out_relu else out

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
    The BatchNorms run folded into their convolutions (:func:`conv_bn`).

    Args:
        depth (int): 50 or 101.
        out_relu (bool): Keep the ReLU after the last block. Default False (official).
        **kwargs: Any other :class:`mmseg.models.backbones.ResNet` argument.
    """

    arch_settings = {50: (IFABottleneck, (3, 4, 6, 3)), 101: (IFABottleneck, (3, 4, 23, 3))}

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
        getattr(self, self.res_layers[-1])[-1].out_relu = out_relu

    def train(self, mode: bool = True) -> 'IFAResNet':
        # mmseg's ResNet.train returns None, which breaks ``model.eval()`` chaining
        super().train(mode)
        return self

    @torch.no_grad()
    def _frozen_forward(self, x: Tensor) -> Tensor:
        """Stem and frozen stages: no graph is built, as in the official code."""
        x = sequential_forward(self.stem, x) if self.deep_stem else self.relu(conv_bn(self.conv1, self.norm1, x))
        x = self.maxpool(x)
        for name in self.res_layers[:self.frozen_stages]:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: Tensor) -> tuple:
        """Features of ``out_indices``, in channels-last memory format.

        Channels-last (NHWC) is what oneDNN and cuDNN convolve without reordering. On
        CPU without autograd, the batch goes through in chunks whose largest activation
        (the stem output) stays below glibc's mmap threshold (:func:`cpu_chunk_size`; at 400x400,
        one image per chunk: 8 images take ~15% less time than in one batch). With autograd the
        batch stays whole: the backward pass is faster on it. Within
        :func:`~ifa_mmseg.models.utils.memory.keep_memory_format` (the ``'vmap'`` adaptation engine)
        the memory format is left as it comes: vmap cannot convert it.
        """
        x = channels_last(x)
        if x.device.type == 'cpu' and not torch.is_grad_enabled():
            chunk = cpu_chunk_size(self.stem_channels * -(-x.shape[2] // 2) * -(-x.shape[3] // 2) * x.element_size())
            if chunk < x.shape[0]:
                return tuple(torch.cat(outs) for outs in zip(*map(self._forward, x.split(chunk))))
        return self._forward(x)

    def _forward(self, x: Tensor) -> tuple:
        x = self._frozen_forward(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            if i >= self.frozen_stages:
                x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
