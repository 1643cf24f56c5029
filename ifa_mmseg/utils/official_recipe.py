"""Deterministic weights and episodes: the test recipe, shared by the tests, the fixture
generator and the analysis tools (``tools/analysis_tools/benchmark.py``, ``get_flops.py``).

The official IFA code is run offline once on exactly these tensors (see
``tests/fixtures/official/README.md``); the tests regenerate them here, so only the
small outputs are committed. Every tensor is drawn from a ``torch.Generator`` seeded
from the CRC32 of its name, so the recipe does not depend on iteration order.
"""
import math
import zlib
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


def _gen(name: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(name.encode()))


def _conv(name: str, shape: Tuple[int, ...]) -> torch.Tensor:
    fan_in = shape[1] * shape[2] * shape[3]
    return torch.randn(shape, generator=_gen(name)) * math.sqrt(2.0 / fan_in)


def _bn(prefix: str, channels: int, gamma: float = 1.0) -> Dict[str, torch.Tensor]:
    return {
        f'{prefix}.weight': gamma + 0.1 * gamma * torch.randn(channels, generator=_gen(prefix + '.weight')),
        f'{prefix}.bias': 0.1 * torch.randn(channels, generator=_gen(prefix + '.bias')),
        f'{prefix}.running_mean': 0.1 * torch.randn(channels, generator=_gen(prefix + '.running_mean')),
        f'{prefix}.running_var': 0.5 + torch.rand(channels, generator=_gen(prefix + '.running_var')),
        f'{prefix}.num_batches_tracked': torch.tensor(0, dtype=torch.long),
    }


def _bottleneck_stages(depth: int, inplanes: int, num_stages: int) -> 'OrderedDict[str, torch.Tensor]':
    """``layer1..layer{num_stages}`` of a bottleneck ResNet whose stem gives ``inplanes`` channels.

    The last BN of every block is scaled by 0.3 so the residual stream stays tame.
    """
    sd: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512)[:num_stages], STAGE_BLOCKS[depth])):
        for j in range(blocks):
            p = f'layer{i + 1}.{j}'
            sd[f'{p}.conv1.weight'] = _conv(f'{p}.conv1.weight', (planes, inplanes, 1, 1))
            sd.update(_bn(f'{p}.bn1', planes))
            sd[f'{p}.conv2.weight'] = _conv(f'{p}.conv2.weight', (planes, planes, 3, 3))
            sd.update(_bn(f'{p}.bn2', planes))
            sd[f'{p}.conv3.weight'] = _conv(f'{p}.conv3.weight', (planes * 4, planes, 1, 1))
            sd.update(_bn(f'{p}.bn3', planes * 4, gamma=0.3))
            if j == 0:
                sd[f'{p}.downsample.0.weight'] = _conv(f'{p}.downsample.0.weight', (planes * 4, inplanes, 1, 1))
                sd.update(_bn(f'{p}.downsample.1', planes * 4))
            inplanes = planes * 4
    return sd


def _classifier() -> 'OrderedDict[str, torch.Tensor]':
    return OrderedDict([('fc.weight', 0.01 * torch.randn(1000, 2048, generator=_gen('fc.weight'))),
                        ('fc.bias', torch.zeros(1000))])


def imagenet_state_dict(depth: int = 50, with_head: bool = True) -> 'OrderedDict[str, torch.Tensor]':
    """Weights in the layout of SSP/IFA's ``pretrained/resnet{depth}.pth``.

    Deep stem ``conv1.{0,1,3,4,6}`` + ``bn1``, bottleneck stages ``layer1..layer4``
    and, when ``with_head``, ``fc`` (the official loader ignores layer4/fc).
    """
    sd: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    sd['conv1.0.weight'] = _conv('conv1.0.weight', (64, 3, 3, 3))
    sd.update(_bn('conv1.1', 64))
    sd['conv1.3.weight'] = _conv('conv1.3.weight', (64, 64, 3, 3))
    sd.update(_bn('conv1.4', 64))
    sd['conv1.6.weight'] = _conv('conv1.6.weight', (128, 64, 3, 3))
    sd.update(_bn('bn1', 128))
    sd.update(_bottleneck_stages(depth, 128, 4 if with_head else 3))
    if with_head:
        sd.update(_classifier())
    return sd


def torchvision_state_dict(depth: int = 50) -> 'OrderedDict[str, torch.Tensor]':
    """Weights in the layout of torchvision's ``resnet{depth}`` (the backbone of HSNet and PATNet).

    7x7 stem ``conv1`` + ``bn1``, bottleneck stages ``layer1..layer4`` (stride on the 3x3
    convolution) and ``fc``.
    """
    sd: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    sd['conv1.weight'] = _conv('conv1.weight', (64, 3, 7, 7))
    sd.update(_bn('bn1', 64))
    sd.update(_bottleneck_stages(depth, 64, 4))
    sd.update(_classifier())
    return sd


def official_trained_state_dict(depth: int = 50) -> 'OrderedDict[str, torch.Tensor]':
    """The same weights as a trained official IFA checkpoint (``layer0.*`` keys, no layer4/fc)."""
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for k, v in imagenet_state_dict(depth, with_head=False).items():
        if k.startswith('conv1.'):
            k = 'layer0.0.' + k[len('conv1.'):]
        elif k.startswith('bn1.'):
            k = 'layer0.1.' + k[len('bn1.'):]
        out[k] = v
    return out


def make_episodes(batch: int, shot: int, size: int = 64, seed: int = 0,
                  empty_support: Optional[Tuple[int, int]] = None) -> Dict[str, torch.Tensor]:
    """Normalised-looking episodes with one elliptical object per image.

    Returns ``query`` [B,3,H,W], ``supports`` [B,K,3,H,W], ``support_masks``
    [B,K,H,W] float in {0,1} and ``query_mask`` [B,H,W] long. Within an episode the
    object and background colours are shared, so prototypes are meaningful.
    ``empty_support=(b, k)`` blanks that support's mask (the SSP fallback path).
    """
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(size, dtype=torch.float32), indexing='ij')

    def image(fg_col: torch.Tensor, bg_col: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        cy, cx = (0.25 + 0.5 * torch.rand(2, generator=g)) * size
        ry, rx = (0.15 + 0.2 * torch.rand(2, generator=g)) * size
        mask = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).float()
        noise = 0.5 * torch.randn(3, size, size, generator=g)
        img = mask * fg_col[:, None, None] + (1 - mask) * bg_col[:, None, None] + noise
        return img, mask

    q_imgs: List[torch.Tensor] = []
    q_masks: List[torch.Tensor] = []
    s_imgs: List[torch.Tensor] = []
    s_masks: List[torch.Tensor] = []
    for b in range(batch):
        fg_col = 2 * torch.randn(3, generator=g)
        bg_col = 2 * torch.randn(3, generator=g)
        img, m = image(fg_col, bg_col)
        q_imgs.append(img)
        q_masks.append(m)
        si, sm = zip(*[image(fg_col, bg_col) for _ in range(shot)])
        s_imgs.append(torch.stack(si))
        s_masks.append(torch.stack(sm))
    support_masks = torch.stack(s_masks)
    if empty_support is not None:
        support_masks[empty_support] = 0
    return dict(query=torch.stack(q_imgs), supports=torch.stack(s_imgs),
                support_masks=support_masks, query_mask=torch.stack(q_masks).long())
