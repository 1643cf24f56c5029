"""Key conversion from the official SSP/IFA weight files to ``IFAResNet``/``IFASegmentor``."""
import re
from collections import OrderedDict
from typing import Dict, Tuple

from torch import Tensor

from ...utils.errors import ConversionError

# official deep stem: conv1 = Sequential(conv, BN, ReLU, conv, BN, ReLU, conv), then bn1;
# mmseg's stem is one Sequential(conv, BN, ReLU, conv, BN, ReLU, conv, BN, ReLU).
_STEM_IMAGENET = re.compile(r'^conv1\.([01346])\.(.+)$')
_STEM_TRAINED = re.compile(r'^layer0\.0\.([01346])\.(.+)$')
_STEM_BN = re.compile(r'^(?:bn1|layer0\.1)\.(.+)$')
_LAYER = re.compile(r'^layer([1-4])\.(\d+)\.(conv[123]|bn[123]|downsample\.[01])\.(.+)$')


def detect_format(state_dict: Dict[str, Tensor]) -> str:
    """``'trained'`` (official IFA/SSP checkpoint, ``layer0.*``) or ``'imagenet'`` (``conv1.*``)."""
    if any(k.startswith('layer0.') for k in state_dict):
        return 'trained'
    if any(k.startswith('conv1.') for k in state_dict):
        return 'imagenet'
    raise ConversionError('neither layer0.* (trained IFA checkpoint) nor conv1.* (ImageNet resnet.pth) '
                          'keys found; is this an official SSP/IFA weight file?')


def _convert_key(key: str) -> Tuple[str, bool]:
    """Official key -> (backbone key, keep). Raises ConversionError for unknown keys."""
    m = _STEM_IMAGENET.match(key) or _STEM_TRAINED.match(key)
    if m:
        return f'stem.{m.group(1)}.{m.group(2)}', True
    m = _STEM_BN.match(key)
    if m:
        return f'stem.7.{m.group(1)}', True
    m = _LAYER.match(key)
    if m:
        if m.group(1) == '4':
            return key, False  # IFA uses stages 1-3 only
        return key, True  # block parameter names are the same in mmseg
    if key.startswith('fc.'):
        return key, False
    raise ConversionError(f'unexpected key {key!r} in the official weights')


def convert_official(state_dict: Dict[str, Tensor], target: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Rename official SSP/IFA weights to ``IFAResNet`` keys and check them.

    Args:
        state_dict: an official ``pretrained/resnet{50,101}.pth`` or a trained IFA
            checkpoint (``module.`` prefixes from DataParallel are accepted).
        target: the ``IFAResNet`` state dict the weights must fill completely.

    Returns:
        Backbone-level state dict (``stem.*``, ``layer1..3.*``).

    Raises:
        ConversionError: naming the first unknown key, shape mismatch or
            target key left without a value.
    """
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    detect_format(state_dict)
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in state_dict.items():
        new, keep = _convert_key(key)
        if not keep:
            continue
        if new not in target:
            raise ConversionError(f'{key!r} -> {new!r} has no place in the target backbone '
                                  '(wrong depth?)')
        if tuple(target[new].shape) != tuple(value.shape):
            raise ConversionError(f'{key!r}: shape {tuple(value.shape)} does not match '
                                  f'{new!r} {tuple(target[new].shape)}')
        out[new] = value
    missing = [k for k in target if k not in out]
    if missing:
        raise ConversionError(f'{len(missing)} backbone keys would stay random, e.g. {missing[0]!r}')
    return out


def infer_depth(state_dict: Dict[str, Tensor]) -> int:
    """50 or 101, from the number of blocks in stage 3."""
    blocks = {int(m.group(1)) for k in state_dict
              for m in [re.match(r'^(?:module\.)?layer3\.(\d+)\.', k)] if m}
    if not blocks:
        raise ConversionError('no layer3.* keys: cannot infer the ResNet depth')
    depth = {6: 50, 23: 101}.get(max(blocks) + 1)
    if depth is None:
        raise ConversionError(f'layer3 has {max(blocks) + 1} blocks; expected 6 (R-50) or 23 (R-101)')
    return depth
