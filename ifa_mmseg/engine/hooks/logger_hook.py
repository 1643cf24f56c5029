"""mmengine's LoggerHook with the test metrics file written by one process."""
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import LoggerHook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class FewShotLoggerHook(LoggerHook):
    """:class:`~mmengine.hooks.LoggerHook` whose test metrics go to ``<timestamp>.json`` from the main process only.

    mmengine 0.10's ``after_test_epoch`` writes that file on every rank; the processes of a
    distributed test then write the same file at once and can leave two JSON documents in
    it (seen with 2 gloo processes). The metrics are the same on every rank.
    """

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if is_main_process():
            super().after_test_epoch(runner, metrics)
