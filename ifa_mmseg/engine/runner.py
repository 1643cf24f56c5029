"""mmengine's Runner with the config's facts resolved, a recorded protocol and a resume that resumes."""
import os.path as osp
import pickle
from typing import Any, Dict, Optional

from mmengine.config import Config
from mmengine.dist import master_only
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from ..models.utils.state_check import naming_file
from .checkpoints import (PARTIAL_SUFFIX, checkpoint_template, find_resume_checkpoint, list_checkpoints,
                          replace_durably)
from .protocol import ProtocolError, check_stage, protocol_summary, resolve_config, selection_note, write_protocol


def check_start_checkpoint(cfg: Config) -> None:
    """Stop before building anything when the checkpoint a run starts from is missing.

    A resumed run whose work dir holds checkpoints does not need ``load_from`` (whether one of them is
    readable, :meth:`FewShotRunner.load_or_resume` decides and says).
    """
    load_from = cfg.get('load_from')
    if not load_from or '://' in load_from or osp.isfile(load_from):
        return
    if cfg.get('resume') and list_checkpoints(cfg.work_dir, checkpoint_template(cfg)):
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
      (:func:`~ifa_mmseg.engine.protocol.resolve_config`) before anything is built, so
      the runner, its dumped config and every checkpoint's meta hold the resolved values.
    * :meth:`train` writes ``protocol.json`` (the record plus the adaptation pool and the
      test queries it excludes) into the work dir; ``MultiSeedTestLoop`` writes the test
      run's (with the episodes per seed).
    * ``resume=True`` continues from the newest readable checkpoint of the work dir
      (:func:`~ifa_mmseg.engine.checkpoints.find_resume_checkpoint`), even when ``load_from``
      names the checkpoint the stage starts from (mmengine would resume from ``load_from``,
      or from the path in ``last_checkpoint``); with no checkpoint in the work dir the stage
      starts from ``load_from``.
    * :meth:`save_checkpoint` never leaves a partly written file under a checkpoint's name.
    """

    protocol: Dict[str, Any]

    @classmethod
    def from_cfg(cls, cfg: Config) -> 'FewShotRunner':
        cfg = resolve_config(cfg)
        check_start_checkpoint(cfg)
        runner = super().from_cfg(cfg)
        record = runner.protocol = cfg.protocol.to_dict()
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
        latest = find_resume_checkpoint(self.work_dir, checkpoint_template(self.cfg)) if self._resume else None
        if latest is not None:
            self.logger.info(f'Auto resumed from the latest checkpoint {latest}.')
            try:
                self.resume(latest)
            except (EOFError, RuntimeError, pickle.UnpicklingError) as err:
                # torch.load names neither the file nor, for an empty one, the fault
                raise RuntimeError(f'resume from {latest} failed: {type(err).__name__}: {err}') from err
        elif self._load_from is not None:
            if self._resume:
                self.logger.info(f'resume: no checkpoint in {self.work_dir}; starting from {self._load_from}')
            self.load_checkpoint(self._load_from)
        self._has_loaded = True

    def load_checkpoint(self, filename: str, *args: Any, **kwargs: Any) -> Any:
        """mmengine's, with a checkpoint that does not fit the model named in the error (the model's
        ``strict_load`` decides what fits: :func:`~ifa_mmseg.models.utils.check_loaded_state`)."""
        with naming_file(filename):
            return super().load_checkpoint(filename, *args, **kwargs)

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True, save_param_scheduler: bool = True, meta: Optional[dict] = None,
                        by_epoch: bool = True, backend_args: Optional[dict] = None) -> None:
        """mmengine's (same arguments), written atomically on a local disk.

        A kill during a save would leave a partial file under the checkpoint's name, for a resume to
        load; so mmengine writes ``filename + PARTIAL_SUFFIX``, renamed onto ``filename`` once whole.
        """
        local = file_client_args is None and isinstance(get_file_backend(out_dir, backend_args=backend_args),
                                                        LocalBackend)
        written = filename + PARTIAL_SUFFIX if local else filename
        super().save_checkpoint(out_dir, written, file_client_args, save_optimizer, save_param_scheduler, meta,
                                by_epoch, backend_args)
        if local:
            replace_durably(osp.join(out_dir, written), osp.join(out_dir, filename))

    def train(self):
        check_stage(self.protocol, 'train')
        self._train_loop = self.build_train_loop(self._train_loop)
        pool = getattr(self.train_dataloader.dataset, 'pool_summary', None) or {}
        write_protocol(self.work_dir, dict(self.protocol, mode='train', **pool))
        return super().train()

