"""A test-only fault injected into training at a chosen iteration, switched on by environment variables."""
import os
import os.path as osp
import signal
import time

from mmengine.dist import barrier, get_rank
from mmengine.fileio import LocalBackend
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class FaultAtIterHook(Hook):
    """At the start of iteration ``IFA_FAULT_ITER`` (0-based), fail as ``IFA_FAULT`` says.

    ``kill``: rank ``IFA_FAULT_RANK`` (default 1) SIGKILLs itself, like a crashed node.
    ``hang``: every rank sleeps, waiting to be cancelled (scancel).
    ``kill_in_save``: the next checkpoint write stops half way and the process SIGKILLs itself.
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
        if fault == 'kill_in_save':
            kill_in_next_checkpoint_write()
            return
        if fault != 'kill':
            raise ValueError(f'IFA_FAULT={fault!r}: use kill, hang or kill_in_save')
        if get_rank() == int(os.environ.get('IFA_FAULT_RANK', 1)):
            os.kill(os.getpid(), signal.SIGKILL)


def kill_in_next_checkpoint_write() -> None:
    """Make the next ``*.pth*`` file mmengine writes (``LocalBackend.put``) get half its bytes, then SIGKILL
    the process, as a kill or a node failure during a save would."""
    put = LocalBackend.put

    def put_half_then_kill(backend: LocalBackend, obj: bytes, filepath) -> None:
        if '.pth' not in osp.basename(filepath):
            return put(backend, obj, filepath)
        put(backend, obj[:len(obj) // 2], filepath)
        os.kill(os.getpid(), signal.SIGKILL)

    LocalBackend.put = put_half_then_kill
