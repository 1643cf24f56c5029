"""mmengine's Runner with the config's facts resolved, a recorded protocol and a resume that resumes."""
import copy
import os.path as osp
from typing import Any, Dict

from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import find_latest_checkpoint
from mmseg.registry import RUNNERS

from .protocol import ProtocolError, protocol_summary, resolve_protocol, selection_note, write_protocol


def check_start_checkpoint(cfg: Config) -> None:
    """Stop before building anything when the checkpoint a run starts from is missing.

    A resumed run that finds a checkpoint in its work dir does not need ``load_from``.
    """
    load_from = cfg.get('load_from')
    if not load_from or '://' in load_from or osp.isfile(load_from):
        return
    if cfg.get('resume') and find_latest_checkpoint(cfg.work_dir) is not None:
        return
    how = (f'train it first: python tools/train.py {cfg.source_config}' if cfg.get('source_config')
           else 'check the path')
    raise ProtocolError(f'checkpoint to start from not found: {load_from}\n{how}, or convert an official '
                        'checkpoint with tools/model_converters/ifa_official_to_mmseg.py and pass '
                        '--cfg-options load_from=PATH')


@RUNNERS.register_module()
class FewShotRunner(Runner):
    """A :class:`~mmengine.runner.Runner` for few-shot configs (``runner_type='FewShotRunner'``).

    * :meth:`from_cfg` resolves the config's facts and protocol keys
      (:func:`~ifa_mmseg.engine.protocol.resolve_protocol`) before anything is built, so
      the runner, its dumped config and every checkpoint's meta hold the resolved values.
    * :meth:`train` writes ``protocol.json`` (the record plus the adaptation pool and the
      test queries it excludes) into the work dir; ``MultiSeedTestLoop`` writes the test
      run's (with the episodes per seed).
    * ``resume=True`` continues from the newest checkpoint of the work dir even when
      ``load_from`` names the checkpoint the stage starts from (mmengine would resume
      from ``load_from``); with no checkpoint in the work dir the stage starts from
      ``load_from``.
    """

    protocol: Dict[str, Any]

    @classmethod
    def from_cfg(cls, cfg: Config) -> 'FewShotRunner':
        cfg = copy.deepcopy(cfg)
        record = resolve_protocol(cfg)
        check_start_checkpoint(cfg)
        runner = super().from_cfg(cfg)
        runner.protocol = record
        runner.logger.info(f'protocol: {protocol_summary(record)}')
        note = selection_note(record)
        if note:
            runner.logger.warning(note)
        return runner

    @staticmethod
    def build_dataloader(dataloader: Any, seed: Any = None, diff_rank_seed: bool = False) -> Any:
        """mmengine's, except that a ``collate_fn`` inherited from an ``ifa_mmseg::`` config loses the
        ``_scope_`` key mmengine puts there (mmengine would pass it to the function as an argument)."""
        collate = dataloader.get('collate_fn') if isinstance(dataloader, dict) else None
        if isinstance(collate, dict) and '_scope_' in collate:
            dataloader = dict(dataloader, collate_fn={k: v for k, v in collate.items() if k != '_scope_'})
        return Runner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)

    def load_or_resume(self) -> None:
        if self._has_loaded:
            return
        latest = find_latest_checkpoint(self.work_dir) if self._resume else None
        if latest is not None:
            self.logger.info(f'Auto resumed from the latest checkpoint {latest}.')
            self.resume(latest)
        elif self._load_from is not None:
            if self._resume:
                self.logger.info(f'resume: no checkpoint in {self.work_dir}; starting from {self._load_from}')
            self.load_checkpoint(self._load_from)
        self._has_loaded = True

    def train(self):
        if self.protocol.get('stage') == 'adaptation' and self.protocol.get('adaptation_labels') == 'none':
            raise ProtocolError("adaptation_labels='none' has no adaptation stage: evaluate the source "
                                'checkpoint directly with tools/test.py CONFIG CHECKPOINT')
        if self.protocol.get('stage') == 'adaptation' and self.protocol.get('adaptation_labels') == 'episode':
            raise ProtocolError("adaptation_labels='episode' adapts each test episode at test time and has no "
                                'adaptation stage to train: run tools/test.py CONFIG SOURCE_CHECKPOINT '
                                "--cfg-options adaptation_labels=episode")
        self._train_loop = self.build_train_loop(self._train_loop)
        pool = getattr(self.train_dataloader.dataset, 'pool_summary', None) or {}
        write_protocol(self.work_dir, dict(self.protocol, mode='train', **pool))
        return super().train()

