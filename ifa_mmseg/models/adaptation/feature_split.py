"""A segmentor's feature extractor cut in two at the first adapted parameter.

Per-episode adaptation changes only some parameters; everything computed before the
first of them (the *frozen prefix*) is the same at every step, so it is computed once per
image and episode, and each step runs only the *suffix* forward and backward.

A backbone is cut by a function registered for its class in :data:`BACKBONE_BLOCKS`: it
lists the backbone's blocks in the order its ``forward`` runs them, each with the
parameter names it owns. A backbone of another class is not cut (the prefix is the
identity), which is correct, only not cheaper. Classes are named by their full import
path, so that mmpretrain is imported only by configs that use it.
"""
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmseg.models.backbones import ResNet
from torch import Tensor, nn

from ..backbones.ifa_resnet import IFAResNet, conv_bn, sequential_forward


class Block(NamedTuple):
    """One step of a backbone's forward.

    Attributes:
        owns: parameter-name prefixes, relative to the backbone, of the block's parameters.
        run: ``x -> x``.
        output: the position of its result among the backbone's outputs, or ``None``.
    """
    owns: Tuple[str, ...]
    run: Callable[[Tensor], Tensor]
    output: Optional[int] = None


# 'module.Class' of a backbone class -> the function listing its blocks; the most derived registered class wins
BACKBONE_BLOCKS: Dict[str, Callable[[nn.Module], List[Block]]] = {}


def register_blocks(path: str) -> Callable:
    """Registers a block-listing function for the backbone class at import path ``path``."""
    def wrap(fn: Callable[[nn.Module], List[Block]]) -> Callable[[nn.Module], List[Block]]:
        BACKBONE_BLOCKS[path] = fn
        return fn
    return wrap


def backbone_blocks(backbone: nn.Module) -> Optional[List[Block]]:
    """The blocks of ``backbone`` (:data:`BACKBONE_BLOCKS`), or ``None`` for a class without a split."""
    for cls in type(backbone).__mro__:
        fn = BACKBONE_BLOCKS.get(f'{cls.__module__}.{cls.__qualname__}')
        if fn is not None:
            return fn(backbone)
    return None


def _resnet_layers(backbone: ResNet, stem: Callable[[Tensor], Tensor]) -> List[Block]:
    """Stem (with the max pool), then every residual block of every stage."""
    outputs = {stage: i for i, stage in enumerate(sorted(backbone.out_indices))}
    blocks = [Block(('stem', 'conv1', 'norm1'), lambda x: backbone.maxpool(stem(x)))]
    for i, name in enumerate(backbone.res_layers):
        layer = getattr(backbone, name)
        for j, block in enumerate(layer):
            blocks.append(Block((f'{name}.{j}', ), block, outputs.get(i) if j == len(layer) - 1 else None))
    return blocks


@register_blocks('mmseg.models.backbones.resnet.ResNet')
def resnet_blocks(backbone: ResNet) -> List[Block]:
    """mmseg ``ResNet`` (and ``ResNetV1c``/``V1d``): ``ResNet.forward`` block by block."""
    def stem(x: Tensor) -> Tensor:
        return backbone.stem(x) if backbone.deep_stem else backbone.relu(backbone.norm1(backbone.conv1(x)))
    return _resnet_layers(backbone, stem)


@register_blocks(f'{IFAResNet.__module__}.IFAResNet')
def ifa_resnet_blocks(backbone: IFAResNet) -> List[Block]:
    """:class:`IFAResNet`: its stem with folded BatchNorm (``IFAResNet._frozen_forward``), block by block."""
    def stem(x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
        if backbone.deep_stem:
            return sequential_forward(backbone.stem, x)
        return backbone.relu(conv_bn(backbone.conv1, backbone.norm1, x))
    return _resnet_layers(backbone, stem)


@register_blocks('mmpretrain.models.backbones.vision_transformer.VisionTransformer')
def vit_blocks(backbone: nn.Module) -> List[Block]:
    """mmpretrain ``VisionTransformer`` (DINOv2 included): embedding, then each transformer layer.

    The token grid (h, w) is known once the embedding has run; the later blocks read it
    from there, so the blocks of one list serve images of one size at a time.
    """
    grid: List[Tuple[int, int]] = []

    def embed(x: Tensor) -> Tensor:
        x, hw = backbone.patch_embed(x)
        grid[:] = [hw]
        if backbone.cls_token is not None:
            x = torch.cat((backbone.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + backbone.resize_pos_embed(backbone.pos_embed, backbone.patch_resolution, hw,
                                          mode=backbone.interpolate_mode, num_extra_tokens=backbone.num_extra_tokens)
        return backbone.pre_norm(backbone.drop_after_pos(x))

    def layer(i: int) -> Callable[[Tensor], Tensor]:
        last = i == len(backbone.layers) - 1

        def run(x: Tensor) -> Tensor:
            x = backbone.layers[i](x)
            if last and backbone.final_norm:
                x = backbone.ln1(x)
            return backbone._format_output(x, grid[0]) if i in backbone.out_indices else x
        return run

    outputs = {stage: i for i, stage in enumerate(sorted(backbone.out_indices))}
    blocks = [Block(('patch_embed', 'cls_token', 'pos_embed', 'pre_norm'), embed)]
    for i in range(len(backbone.layers)):
        owns = (f'layers.{i}', 'ln1') if i == len(backbone.layers) - 1 else (f'layers.{i}', )
        blocks.append(Block(owns, layer(i), outputs.get(i)))
    return blocks


def owns(prefixes: Sequence[str], name: str) -> bool:
    """``name`` is one of ``prefixes`` or below one of them."""
    return any(name == p or name.startswith(p + '.') for p in prefixes)


class FeatureSplit(nn.Module):
    """``segmentor.extract_feat`` as ``suffix(prefix(images))``, cut before the first adapted parameter.

    :meth:`prefix` needs no gradient and is the same at every adaptation step;
    :meth:`forward` (the suffix) is what a step differentiates, a module's forward so that
    ``torch.func.functional_call`` can run it with an episode's weights (names as the
    segmentor's, under ``segmentor.``). A backbone without registered blocks, a neck, or
    an adapted parameter outside the backbone leaves nothing to cut: the prefix is the
    identity.

    Args:
        segmentor: a module with ``backbone``, ``extract_feat`` and ``in_index``.
        adapted: the names of the parameters that adapt (as ``segmentor.named_parameters``).
    """

    def __init__(self, segmentor: nn.Module, adapted: Sequence[str]) -> None:
        super().__init__()
        self.segmentor = segmentor
        blocks = backbone_blocks(segmentor.backbone)
        cut = 0
        if blocks is not None and not getattr(segmentor, 'with_neck', False):
            inner = [n[len('backbone.'):] for n in adapted if n.startswith('backbone.')]
            if len(inner) == len(adapted):
                cut = next((i for i, b in enumerate(blocks) if any(owns(b.owns, n) for n in inner)), len(blocks))
                num_outputs = sum(b.output is not None for b in blocks)
                index = segmentor.in_index % num_outputs
                last = next(i for i, b in enumerate(blocks) if b.output == index)
                blocks, cut = blocks[:last + 1], min(cut, last)
        self.blocks: Optional[List[Block]] = blocks if cut else None
        self.cut = cut

    @property
    def cached_blocks(self) -> int:
        """How many blocks the prefix holds (0: nothing is cached)."""
        return self.cut

    @torch.no_grad()
    def prefix(self, images: Tensor) -> Tensor:
        """[N, 3, H, W] -> the input of the first block that holds an adapted parameter."""
        if self.blocks is None:
            return images
        for block in self.blocks[:self.cut]:
            images = block.run(images)
        return images

    def forward(self, x: Tensor) -> Tensor:
        """:meth:`prefix` output -> [N, C, h, w] features, as ``segmentor.extract_feat`` of the images."""
        if self.blocks is None:
            return self.segmentor.extract_feat(x)
        for block in self.blocks[self.cut:]:
            x = block.run(x)
        return x
