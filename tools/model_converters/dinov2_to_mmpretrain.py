"""Convert an original DINOv2 release checkpoint to mmpretrain's ``VisionTransformer`` keys.

mmpretrain 1.2 ships converted DINOv2 weights (``configs/dinov2/metafile.yml``) but no converter for the
original release files (``dinov2_vits14_pretrain.pth``, ``dinov2_vitb14_pretrain.pth``, ...). This script
writes the same layout as those converted files: ``dict(state_dict={'backbone.<key>': tensor}, meta=...)``,
so ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')`` loads either.

Key mapping (``N`` = block index; ``blocks.C.N.`` of block-chunked training checkpoints is accepted):

    cls_token, pos_embed                  -> cls_token, pos_embed
    patch_embed.proj.*                    -> patch_embed.projection.*
    blocks.N.norm1.* / norm2.*            -> layers.N.ln1.* / ln2.*
    blocks.N.attn.qkv.* / attn.proj.*     -> layers.N.attn.qkv.* / attn.proj.*
    blocks.N.ls1.gamma / ls2.gamma        -> layers.N.attn.gamma1.weight / ffn.gamma2.weight
    blocks.N.mlp.fc1.* / fc2.*            -> layers.N.ffn.layers.0.0.* / ffn.layers.1.*
    blocks.N.mlp.w12.* / w3.* (ViT-g)     -> layers.N.ffn.w12.* / ffn.w3.*   (ffn_type='swiglu_fused')
    norm.*                                -> ln1.*
    mask_token                            -> dropped (iBOT masking, used only in pretraining)

``register_tokens`` (the ``*_reg4`` releases) cannot be represented by mmpretrain's VisionTransformer and
stop the conversion, as do unknown keys, blocks with missing weights and shape mismatches: every message
names the key. The result is checked against a ``VisionTransformer`` of the inferred size, key by key and
shape by shape. The source is read with ``torch.load(weights_only=True)`` (a pickle asking for code is refused).
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, Tuple

from torch import Tensor

from ifa_mmseg.models.utils.weight_files import read_checked, save_converted
from ifa_mmseg.utils.errors import ConversionError

RELEASE = 'an original DINOv2 release file (a plain state dict)'
PREFIX = 'backbone.'
DROPPED = ('mask_token', )
BLOCK_RULES = (
    ('norm1.', 'ln1.'),
    ('norm2.', 'ln2.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
    ('ls1.gamma', 'attn.gamma1.weight'),
    ('ls2.gamma', 'ffn.gamma2.weight'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
    ('mlp.w12.', 'ffn.w12.'),
    ('mlp.w3.', 'ffn.w3.'),
)
TOP_RULES = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'patch_embed.proj.weight': 'patch_embed.projection.weight',
    'patch_embed.proj.bias': 'patch_embed.projection.bias',
    'norm.weight': 'ln1.weight',
    'norm.bias': 'ln1.bias',
}
HEADS = {384: 6, 768: 12, 1024: 16, 1536: 24}  # ViT-S/B/L/g


def convert_key(key: str) -> str:
    """The mmpretrain key of one original DINOv2 key; ConversionError if it has none."""
    if key == 'register_tokens':
        raise ConversionError('register_tokens: the DINOv2 "_reg" (register) releases are not supported: '
                              "mmpretrain's VisionTransformer has no register tokens; use the release without "
                              'registers (e.g. dinov2_vits14_pretrain.pth)')
    if key in TOP_RULES:
        return TOP_RULES[key]
    m = re.fullmatch(r'blocks\.(?:\d+\.)?(\d+)\.(.+)', key)
    if m:
        for old, new in BLOCK_RULES:
            if m.group(2).startswith(old):
                return f'layers.{m.group(1)}.{new}{m.group(2)[len(old):]}'
    raise ConversionError(f'{key}: unknown key (not part of an original DINOv2 backbone; linear-head files '
                          'and other models are not converted)')


def convert_dinov2(state: Dict[str, Tensor]) -> Tuple['OrderedDict[str, Tensor]', dict]:
    """Original DINOv2 keys -> mmpretrain VisionTransformer keys (no prefix), and the inferred arch.

    Raises:
        ConversionError: unknown, duplicate or missing keys, or shapes that do not fit.
    """
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    out = OrderedDict()
    for key, value in state.items():
        if key in DROPPED:
            continue
        new = convert_key(key)
        if new in out:
            raise ConversionError(f'{key}: a second weight for {new} (duplicate block index?)')
        out[new] = value
    for needed in ('patch_embed.projection.weight', 'pos_embed', 'cls_token'):
        if needed not in out:
            original = next(k for k, v in TOP_RULES.items() if v == needed)
            raise ConversionError(f'{original}: missing (is this a DINOv2 backbone checkpoint?)')
    arch = infer_arch(out)
    check_against_model(out, arch)
    return out, arch


def infer_arch(sd: Dict[str, Tensor]) -> dict:
    """The VisionTransformer arguments the weights imply."""
    embed, _, patch, _ = sd['patch_embed.projection.weight'].shape
    layers = sorted({int(k.split('.')[1]) for k in sd if k.startswith('layers.')})
    if not layers:
        raise ConversionError('blocks.0.*: missing (no transformer blocks; is this a DINOv2 backbone checkpoint?)')
    if layers != list(range(len(layers))):
        missing = sorted(set(range(max(layers) + 1)) - set(layers))
        raise ConversionError(f'blocks.{missing[0]}.*: missing (blocks {layers[0]}..{layers[-1]} are not contiguous)')
    swiglu = 'layers.0.ffn.w12.weight' in sd
    if swiglu:
        ffn = sd['layers.0.ffn.w12.weight'].shape[0] // 2 * 3 // 2  # SwiGLUFFNFused: hidden = 2/3 of this
    elif 'layers.0.ffn.layers.0.0.weight' in sd:
        ffn = sd['layers.0.ffn.layers.0.0.weight'].shape[0]
    else:
        raise ConversionError('blocks.0.mlp.fc1.weight: missing (nor mlp.w12.weight of ViT-g)')
    tokens = sd['pos_embed'].shape[1] - 1
    side = int(round(tokens ** 0.5))
    if side * side != tokens:
        raise ConversionError(f'pos_embed: {tokens} patch positions are not a square grid (+1 class token)')
    heads = HEADS.get(embed, 1)
    return dict(arch=dict(embed_dims=embed, num_layers=len(layers), num_heads=heads, feedforward_channels=ffn),
                patch_size=patch, img_size=side * patch, layer_scale_init_value=1e-5,
                layer_cfgs=dict(ffn_type='swiglu_fused') if swiglu else dict())


def check_against_model(sd: Dict[str, Tensor], arch: dict) -> None:
    """Every weight of a VisionTransformer of ``arch`` filled, with its shape; nothing else."""
    from mmpretrain.models import VisionTransformer
    expected = VisionTransformer(out_type='featmap', **arch).state_dict()
    inverse = {v: k for k, v in TOP_RULES.items()}

    def original(key: str) -> str:
        if key in inverse:
            return inverse[key]
        n, rest = key.split('.', 2)[1:]
        for old, new in BLOCK_RULES:
            if rest.startswith(new):
                return f'blocks.{n}.{old}{rest[len(new):]}'
        return key

    missing = [k for k in expected if k not in sd]
    if missing:
        raise ConversionError(f'{original(missing[0])}: missing ({len(missing)} weight(s) of a '
                              f'{arch["arch"]["num_layers"]}-block ViT would stay random: '
                              f'{", ".join(original(k) for k in missing[:5])}{" ..." if len(missing) > 5 else ""})')
    extra = [k for k in sd if k not in expected]
    if extra:
        raise ConversionError(f'{original(extra[0])}: not expected in a DINOv2 ViT with these shapes')
    for k, v in expected.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ConversionError(f'{original(k)}: shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='original DINOv2 release .pth (e.g. dinov2_vits14_pretrain.pth)')
    parser.add_argument('dst', help='output .pth (e.g. checkpoints/dinov2_vits14_mmpretrain.pth)')
    args = parser.parse_args()
    try:
        converted, arch = convert_dinov2(read_checked(args.src, args.dst, RELEASE))
        meta = dict(source=osp.basename(args.src), converter='dinov2_to_mmpretrain',
                    **{k: v for k, v in arch.items() if k != 'layer_cfgs'})
        save_converted(args.dst, OrderedDict((PREFIX + k, v) for k, v in converted.items()), meta)
    except ConversionError as e:
        sys.exit(f'{args.src}: {e}')
    except ValueError as e:
        sys.exit(str(e))
    a = arch['arch']
    print(f'{args.src} (DINOv2 ViT, {a["num_layers"]} blocks, {a["embed_dims"]} channels, patch '
          f'{arch["patch_size"]}, {arch["img_size"]} px) -> {args.dst}: {len(converted)} tensors')


if __name__ == '__main__':
    main()
