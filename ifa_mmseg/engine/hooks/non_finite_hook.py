"""Training stops at the first non-finite loss, and no checkpoint with a non-finite weight is written."""
import math
from typing import Any, Dict, Optional

from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmseg.registry import HOOKS

from ...models.utils.state_check import few, non_finite_keys
from ...utils.errors import NonFiniteError


@HOOKS.register_module()
class NonFiniteCheckHook(Hook):
    """Raise :class:`~ifa_mmseg.utils.NonFiniteError` on a NaN/inf loss term or before saving a NaN/inf weight.

    The loss terms are read from the message hub, where mmengine's ``RuntimeInfoHook``
    (a higher priority) has already copied them to the host for logging, so the check adds
    no device synchronisation. The error names the iteration, the term, its value and the
    learning rates. Checkpoints are checked in ``before_save_checkpoint`` (one reduction
    per tensor, once per save), which also covers a step that made the weights non-finite
    after the last finite loss.
    """

    priority = 'ABOVE_NORMAL'  # after RuntimeInfoHook, before the logger and the checkpoint hook

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[Dict[str, Any]] = None) -> None:
        scalars = runner.message_hub.log_scalars
        bad = {k: scalars[f'train/{k}'].current() for k in outputs or {} if f'train/{k}' in scalars}
        bad = {k: v for k, v in bad.items() if not math.isfinite(v)}
        if not bad:
            return
        terms = ', '.join(f'{k}={v}' for k, v in bad.items())
        lrs = {group: [float(f'{lr:.6g}') for lr in values] for group, values in runner.optim_wrapper.get_lr().items()}
        where = (f' (epoch {runner.epoch + 1}, batch {batch_idx + 1})'
                 if isinstance(runner.train_loop, EpochBasedTrainLoop) else '')
        raise NonFiniteError(
            f'training diverged at iteration {runner.iter + 1}{where}: {terms}; learning rates {lrs}. Nothing from '
            'this iteration on was saved. Lower the learning rate (optim_wrapper.optimizer.lr) or resume from the '
            'last checkpoint')

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        bad = non_finite_keys(checkpoint.get('state_dict', {}))
        if bad:
            raise NonFiniteError(f'not saving the checkpoint of iteration {runner.iter}: '
                                 f'{len(bad)} weights hold NaN or inf ({few(bad)}); training diverged')
