"""Key conversion from the official SSP/IFA, HSNet and PATNet weight files to our components."""
import os.path as osp
import re
from collections import OrderedDict
from typing import Callable, Dict, Optional

from mmseg.registry import MODELS
from torch import Tensor

from ...utils.errors import ConversionError
from .weight_files import read_checked, save_converted

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


def _ifa_key(key: str) -> Optional[str]:
    """Official SSP/IFA key -> backbone key, or ``None`` for a key left out. Raises ConversionError for unknown keys."""
    m = _STEM_IMAGENET.match(key) or _STEM_TRAINED.match(key)
    if m:
        return f'stem.{m.group(1)}.{m.group(2)}'
    m = _STEM_BN.match(key)
    if m:
        return f'stem.7.{m.group(1)}'
    m = _LAYER.match(key)
    if m:
        return None if m.group(1) == '4' else key  # IFA uses stages 1-3 only; block names are mmseg's
    if key.startswith('fc.'):
        return None
    raise ConversionError(f'unexpected key {key!r} in the official weights')


def _without_data_parallel(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Drop the ``module.`` prefix that a model wrapped in ``nn.DataParallel`` saves."""
    if state_dict and all(k.startswith('module.') for k in state_dict):
        return {k[len('module.'):]: v for k, v in state_dict.items()}
    return state_dict


def _rename_checked(state_dict: Dict[str, Tensor], target: Dict[str, Tensor], rename: Callable[[str], Optional[str]],
                    what: str) -> 'OrderedDict[str, Tensor]':
    """Rename every key with ``rename`` (``None``: dropped), checking that each lands on a ``target`` key of
    the same shape and that every ``target`` key gets a value; ``what`` names the target in messages."""
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in state_dict.items():
        new = rename(key)
        if new is None:
            continue
        if new not in target:
            raise ConversionError(f'{key!r} -> {new!r} has no place in the target {what} (wrong depth?)')
        if tuple(target[new].shape) != tuple(value.shape):
            raise ConversionError(f'{key!r}: shape {tuple(value.shape)} does not match '
                                  f'{new!r} {tuple(target[new].shape)}')
        out[new] = value
    missing = [k for k in target if k not in out]
    if missing:
        raise ConversionError(f'{len(missing)} {what} keys would stay random, e.g. {missing[0]!r}')
    return out


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
    state_dict = _without_data_parallel(state_dict)
    detect_format(state_dict)
    return _rename_checked(state_dict, target, _ifa_key, 'backbone')


# ---------------------------------------------------------------- HSNet and PATNet
# The official ``best_model.pt`` is the ``state_dict()`` of the nn.DataParallel-wrapped model (``module.`` keys),
# saved by ``common/logger.py`` ``Logger.save_model_miou`` of both repositories: ``backbone.*`` (torchvision's
# ResNet, with ``fc``), ``hpn_learner.*`` and, for PATNet, ``reference_layer{1,2,3}.*``.
HYPERCORR_MODELS = dict(hsnet=('HSNet', 'HSNetHead'), patnet=('PATNet', 'PATNetHead'))
HYPERCORR_BLOCKS = {'encoder_layer4': 'squeeze.0', 'encoder_layer3': 'squeeze.1', 'encoder_layer2': 'squeeze.2',
                    'encoder_layer4to3': 'mix.0', 'encoder_layer3to2': 'mix.1'}
HYPERCORR_DECODER = {'decoder1.0': 'decoder.0', 'decoder1.2': 'decoder.2', 'decoder2.0': 'decoder.5',
                     'decoder2.2': 'decoder.7'}
CONV4D_PARTS = {'conv1': 'conv_q', 'conv2': 'conv_s'}
_HC_BLOCK = re.compile(r'^hpn_learner\.(encoder_layer\w+)\.(\d+)\.(?:(conv[12])\.)?(weight|bias)$')
_HC_DECODER = re.compile(r'^hpn_learner\.(decoder[12]\.\d)\.(weight|bias)$')
_HC_ANCHOR = re.compile(r'^reference_layer([123])\.(weight|bias)$')


def hypercorr_key(key: str) -> Optional[str]:
    """Official HSNet/PATNet key (without ``module.``) -> ``HypercorrSegmentor`` key.

    ``None`` for the keys left out: ``backbone.fc.*`` (the ImageNet classifier) and PATNet's
    ``reference_layer*.bias`` (the transformation reads the anchor weights only).

    Raises:
        ConversionError: a key of no known place.
    """
    if key.startswith('backbone.fc.'):
        return None
    if key.startswith('backbone.'):
        return key  # torchvision's ResNet keys are MultiLayerResNet's
    m = _HC_BLOCK.match(key)
    if m and m.group(1) in HYPERCORR_BLOCKS:
        block, index, conv, param = m.groups()
        part = f'.{CONV4D_PARTS[conv]}' if conv else ''
        return f'decode_head.{HYPERCORR_BLOCKS[block]}.{index}{part}.{param}'
    m = _HC_DECODER.match(key)
    if m and m.group(1) in HYPERCORR_DECODER:
        return f'decode_head.{HYPERCORR_DECODER[m.group(1)]}.{m.group(2)}'
    m = _HC_ANCHOR.match(key)
    if m:
        return f'decode_head.anchors.{int(m.group(1)) - 1}' if m.group(2) == 'weight' else None
    raise ConversionError(f'unexpected key {key!r} in the official weights')


def detect_hypercorr_model(state_dict: Dict[str, Tensor]) -> str:
    """``'patnet'`` (``reference_layer*`` keys) or ``'hsnet'``, for an official checkpoint.

    Raises:
        ConversionError: not an HSNet/PATNet checkpoint, or one with a VGG-16 backbone.
    """
    state_dict = _without_data_parallel(state_dict)
    if not any(k.startswith('hpn_learner.') for k in state_dict):
        raise ConversionError('no hpn_learner.* keys found; is this an official HSNet/PATNet best_model.pt?')
    if any(k.startswith('backbone.features.') for k in state_dict):
        raise ConversionError('a checkpoint with a VGG-16 backbone (backbone.features.*); only the ResNet models '
                              'convert (MultiLayerResNet)')
    return 'patnet' if any(_HC_ANCHOR.match(k) for k in state_dict) else 'hsnet'


def hypercorr_target(model: str, depth: int) -> Dict[str, Tensor]:
    """The state dict a converted ``model`` (``'hsnet'``/``'patnet'``) checkpoint must fill:
    ``HypercorrSegmentor`` with a ``MultiLayerResNet`` of ``depth`` and the model's head."""
    blocks = MODELS.get('MultiLayerResNet').arch_settings[depth][1][1:]  # layers 2-4, the official feat_ids
    return MODELS.build(dict(type='HypercorrSegmentor', backbone=dict(type='MultiLayerResNet', depth=depth),
                             decode_head=dict(type=HYPERCORR_MODELS[model][1], num_blocks=blocks))).state_dict()


def convert_hypercorr(state_dict: Dict[str, Tensor], target: Dict[str, Tensor],
                      model: str) -> 'OrderedDict[str, Tensor]':
    """Rename an official HSNet or PATNet checkpoint to ``HypercorrSegmentor`` keys and check them.

    Args:
        state_dict: the official ``best_model.pt`` (``module.`` prefixes accepted).
        target: the segmentor state dict the weights must fill completely (:func:`hypercorr_target`).
        model: ``'hsnet'`` or ``'patnet'``: what the file must be.

    Returns:
        Segmentor-level state dict (``backbone.*``, ``decode_head.*``).

    Raises:
        ConversionError: the file is the other model, or naming the first unknown key, shape
            mismatch or target key left without a value.
    """
    state_dict = _without_data_parallel(state_dict)
    found = detect_hypercorr_model(state_dict)
    if found != model:
        raise ConversionError(f'an official {HYPERCORR_MODELS[found][0]} checkpoint, not {HYPERCORR_MODELS[model][0]}: '
                              f'convert it with tools/model_converters/{found}_official_to_mmseg.py')
    return _rename_checked(state_dict, target, hypercorr_key, 'segmentor')


def convert_hypercorr_file(src: str, dst: str, model: str) -> str:
    """Convert the official ``model`` (``'hsnet'``/``'patnet'``) checkpoint ``src`` to an mmseg checkpoint ``dst``.

    The checks and the safe loading are those of every converter (:func:`~.weight_files.read_checked`: a pickle
    asking for code is refused); ``dst`` holds ``state_dict`` (``backbone.*``, ``decode_head.*``) and ``meta``.

    Returns:
        A summary line.

    Raises:
        ValueError: naming ``src`` (or ``dst`` if it cannot be written); :class:`ConversionError` for weights
            that do not fit.
    """
    name = HYPERCORR_MODELS[model][0]
    state = read_checked(src, dst, f'an official {name} best_model.pt')
    try:
        detect_hypercorr_model(state)
        depth = infer_depth(state)
        converted = convert_hypercorr(state, hypercorr_target(model, depth), model)
    except ConversionError as err:
        raise ConversionError(f'{src}: {err}') from None
    save_converted(dst, converted, dict(source=osp.basename(src), model=model, depth=depth))
    return f'{src} ({name}, ResNet-{depth}) -> {dst}: {len(converted)} tensors'


def infer_depth(state_dict: Dict[str, Tensor]) -> int:
    """50 or 101, from the number of blocks in stage 3 (of ``backbone.`` too)."""
    blocks = {int(m.group(1)) for k in state_dict
              for m in [re.match(r'^(?:module\.)?(?:backbone\.)?layer3\.(\d+)\.', k)] if m}
    if not blocks:
        raise ConversionError('no layer3.* keys: cannot infer the ResNet depth')
    depth = {6: 50, 23: 101}.get(max(blocks) + 1)
    if depth is None:
        raise ConversionError(f'layer3 has {max(blocks) + 1} blocks; expected 6 (R-50) or 23 (R-101)')
    return depth
