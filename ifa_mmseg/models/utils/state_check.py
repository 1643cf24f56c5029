"""What a loaded checkpoint must give a segmentor: every weight and buffer, all finite.

mmengine's ``load_from``, mmseg's ``init_model`` and ``tools/test.py`` load with ``strict=False`` and only warn, so a
file holding none of the model's weights used to be evaluated as the random initialisation. A segmentor registers
:func:`check_loaded_state` as a ``load_state_dict`` post-hook; every loader (torch's, mmengine's) calls it at the root
with all missing and unexpected keys, so one check covers them all.
"""
import re
from contextlib import contextmanager
from typing import Any, Iterator, List, Mapping, Sequence

import torch
from torch import Tensor, nn

from .ckpt_convert import HYPERCORR_MODELS

# keys a checkpoint may lack without changing a prediction (mmengine ignores them too)
_OPTIONAL_SUFFIXES = ('num_batches_tracked',)
SHOWN = 5  # keys named in a message
_HYPERCORR_KEY = re.compile(r'^(?:module\.)?(hpn_learner|reference_layer)')  # official HSNet/PATNet keys


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model: weights missing, or not finite."""


def few(keys: Sequence[str]) -> str:
    """The first :data:`SHOWN` keys, and how many more."""
    more = f' and {len(keys) - SHOWN} more' if len(keys) > SHOWN else ''
    return ', '.join(keys[:SHOWN]) + more


def likely_cause(missing: Sequence[str], unexpected: Sequence[str], model_keys: Sequence[str]) -> str:
    """One sentence (with its full stop) on what the file probably is, from the key names alone."""
    if any(k.startswith('layer0.') for k in unexpected):
        return ('This looks like an official IFA/SSP checkpoint: convert it first with '
                'tools/model_converters/ifa_official_to_mmseg.py SRC DST.')
    official = {m.group(1) for k in unexpected for m in [_HYPERCORR_KEY.match(k)] if m}
    if official:
        model = 'patnet' if 'reference_layer' in official else 'hsnet'
        return (f'This looks like an official {HYPERCORR_MODELS[model][0]} checkpoint: convert it first with '
                f'tools/model_converters/{model}_official_to_mmseg.py SRC DST.')
    backbone = {k[len('backbone.'):] for k in model_keys if k.startswith('backbone.')}
    if unexpected and sum(k in backbone for k in unexpected) >= len(unexpected) / 2:
        return ('This looks like a backbone-only file (its keys lack the "backbone." prefix): use it as '
                "model.backbone.init_cfg=dict(type='Pretrained', checkpoint=FILE), or load a segmentor checkpoint.")
    if len(missing) == len(model_keys):
        return 'None of the model\'s weights is in the file: is it a checkpoint of this config\'s model?'
    return ('The file was saved from another model (e.g. another backbone depth or frozen stages): check the config '
            'it was trained with.')


def check_loaded_state(module: nn.Module, incompatible: Any) -> None:
    """``load_state_dict`` post-hook: refuse missing or unexpected keys and non-finite values.

    Args:
        module: the segmentor; its ``strict_load=False`` lets missing and unexpected keys pass
            (partial loading), never non-finite values.
        incompatible: torch's ``_IncompatibleKeys`` (``missing_keys``, ``unexpected_keys``).

    Raises:
        CheckpointMismatchError: naming a few keys and the likely cause.
    """
    missing = [k for k in incompatible.missing_keys if not k.endswith(_OPTIONAL_SUFFIXES)]
    unexpected = list(incompatible.unexpected_keys)
    if (missing or unexpected) and getattr(module, 'strict_load', True):
        model_keys = [k for k in module.state_dict() if not k.endswith(_OPTIONAL_SUFFIXES)]
        parts = [f'{len(missing)} of the model\'s {len(model_keys)} weights and buffers are missing'
                 f'{" (" + few(missing) + ")" if missing else ""}']
        if unexpected:
            parts.append(f'{len(unexpected)} keys fit no weight ({few(unexpected)})')
        cause = likely_cause(missing, unexpected, model_keys)
        raise CheckpointMismatchError(
            f'the checkpoint does not fit the model: {"; ".join(parts)}. {cause} To load what fits and keep the rest '
            'as initialised, set model.strict_load=False')
    bad = non_finite_keys(module.state_dict())
    if bad:
        raise CheckpointMismatchError(f'the checkpoint holds non-finite values (NaN or inf) in {len(bad)} weights or '
                                      f'buffers ({few(bad)}): it was saved after training diverged; use an earlier '
                                      'checkpoint')


@contextmanager
def naming_file(filename: str) -> Iterator[None]:
    """Put ``filename`` in front of a :class:`CheckpointMismatchError` raised while it loads (the post-hook cannot
    know which file it checks)."""
    try:
        yield
    except CheckpointMismatchError as err:
        raise CheckpointMismatchError(f'{filename}: {err}') from None


def non_finite_keys(state_dict: Mapping[str, Tensor]) -> List[str]:
    """The keys of ``state_dict``'s floating-point tensors that hold a NaN or an inf."""
    state = {k: v for k, v in state_dict.items() if torch.is_floating_point(v)}
    if not state:
        return []
    finite = torch.stack([torch.isfinite(v).all() for v in state.values()]).cpu()  # one transfer for all tensors
    return [k for k, ok in zip(state, finite.tolist()) if not ok]
