"""A test-only fault injected into training at a chosen iteration, switched on by environment variables."""
import os
import signal
import time

from mmengine.dist import barrier, get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class FaultAtIterHook(Hook):
    """At the start of iteration ``IFA_FAULT_ITER`` (0-based), fail as ``IFA_FAULT`` says.

    ``kill``: rank ``IFA_FAULT_RANK`` (default 1) SIGKILLs itself, like a crashed node.
    ``hang``: every rank sleeps, waiting to be cancelled (scancel).
    All ranks meet at a barrier first, so rank 0 has finished writing the previous
    checkpoint and the fault lands at the same point on every run. Without
    ``IFA_FAULT`` the hook does nothing (the uninterrupted and the resumed runs).
    """

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        fault = os.environ.get('IFA_FAULT')
        if not fault or runner.iter != int(os.environ['IFA_FAULT_ITER']):
            return
        barrier()
        if fault == 'hang':
            while True:
                time.sleep(60)
        if fault != 'kill':
            raise ValueError(f'IFA_FAULT={fault!r}: use kill or hang')
        if get_rank() == int(os.environ.get('IFA_FAULT_RANK', 1)):
            os.kill(os.getpid(), signal.SIGKILL)
