"""Best-checkpoint selection as the official IFA scripts do it (ties go to the later epoch)."""
import os
import os.path as osp
from math import inf

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class FewShotCheckpointHook(CheckpointHook):
    """mmengine's :class:`CheckpointHook` plus the ``'greater_equal'`` rule and a stable best name.

    The official ``train.py``/``ifa.py`` keep a model whenever its score is *at least*
    the best so far, so a later epoch wins a tie; ``rule='greater_equal'`` does that
    (mmengine's ``'greater'`` keeps the earlier one). With ``best_link`` the current best
    checkpoint is also reachable under one fixed name in the work dir (a symlink), so
    the next stage's ``load_from`` need not know which epoch won.

    Args:
        best_link: file name of the link to the best checkpoint, or ``None``.
        **kwargs: :class:`CheckpointHook` arguments.
    """

    rule_map = {**CheckpointHook.rule_map, 'greater_equal': lambda x, y: x >= y}
    init_value_map = {**CheckpointHook.init_value_map, 'greater_equal': -inf}

    def __init__(self, best_link: str = 'best.pth', **kwargs) -> None:
        super().__init__(**kwargs)
        self.best_link = best_link

    def _save_best_checkpoint(self, runner, metrics) -> None:
        super()._save_best_checkpoint(runner, metrics)
        best = getattr(self, 'best_ckpt_path', None)
        if self.best_link is None or best is None or not is_main_process():
            return
        link = osp.join(self.out_dir, self.best_link)
        if osp.lexists(link):
            os.remove(link)
        os.symlink(osp.basename(best), link)
