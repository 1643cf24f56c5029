"""Evaluation over several episode seeds, reported as mean and 95% confidence interval."""
import copy
import logging
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner import TestLoop
from mmengine.runner.amp import autocast
from mmseg.registry import LOOPS
from prettytable import PrettyTable
from scipy import stats

from ..utils.cli import AMP_DTYPES
from .protocol import resolve_protocol, selection_note, write_protocol


def mean_ci95(values: Sequence[float]) -> Dict[str, float]:
    """Mean and half-width of the Student-t 95% confidence interval of the mean."""
    v = np.asarray(values, dtype=np.float64)
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
    return dict(mean=float(v.mean()), ci95=half)


@LOOPS.register_module()
class MultiSeedTestLoop(TestLoop):
    """Run the test episodes once per seed (official: seeds 0-4) and aggregate.

    The test dataloader is rebuilt for every seed with ``dataset.seed`` set, so each
    pass evaluates a different, reproducible set of episodes; the evaluator is
    computed per pass. Returned metrics keep their names (the mean over seeds) and gain
    ``<name>_ci95`` (half-width of the 95% interval over seeds).

    Args:
        seeds: episode seeds.
        dataloader: must be a config dict (rebuilt per seed).
        fp16: autocast to float16 (mmengine's flag); same as ``amp_dtype='float16'``.
        amp_dtype: run the model under autocast to this dtype (``'float16'`` or
            ``'bfloat16'``); None for full precision.
    """

    def __init__(self, runner, dataloader: Dict, evaluator: Union[Dict, List],
                 seeds: Sequence[int] = (0, 1, 2, 3, 4), fp16: bool = False,
                 amp_dtype: Optional[str] = None) -> None:
        if not isinstance(dataloader, dict):
            raise TypeError('MultiSeedTestLoop needs the test dataloader as a config dict')
        if amp_dtype is not None and amp_dtype not in AMP_DTYPES:
            raise ValueError(f'MultiSeedTestLoop: amp_dtype must be None or one of {AMP_DTYPES}, got {amp_dtype!r}')
        if getattr(runner, 'protocol', None) is None:
            # a plain mmengine Runner (mmseg's tools/test.py ignores runner_type): resolve the facts here
            cfg = copy.deepcopy(runner.cfg)
            runner.protocol = resolve_protocol(cfg)
            dataloader, evaluator, seeds = cfg.test_dataloader, cfg.test_evaluator, cfg.test_cfg.seeds
        self._dataloader_cfg = copy.deepcopy(dataloader)
        self.seeds = tuple(seeds)
        self.current_seed = self.seeds[0]
        self.amp_dtype = amp_dtype or ('float16' if fp16 else None)
        super().__init__(runner, self._seeded_cfg(self.seeds[0]), evaluator, fp16)

    def _seeded_cfg(self, seed: int) -> Dict:
        cfg = copy.deepcopy(self._dataloader_cfg)
        cfg['dataset']['seed'] = seed
        return cfg

    def run(self) -> Dict[str, float]:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        write_protocol(self.runner.work_dir, dict(self.runner.protocol, mode='test',
                                                   test_episodes_per_seed=len(self.dataloader.dataset)))
        per_seed: List[Dict[str, float]] = []
        for i, seed in enumerate(self.seeds):
            self.current_seed = seed
            if i > 0:
                self.dataloader = self.runner.build_dataloader(self._seeded_cfg(seed), seed=self.runner.seed)
            print_log(f'episode seed {seed} ({i + 1}/{len(self.seeds)}): '
                      f'{len(self.dataloader.dataset)} episodes', logger='current')
            for idx, data_batch in enumerate(self.dataloader):
                self.run_iter(idx, data_batch)
            per_seed.append(self.evaluator.evaluate(len(self.dataloader.dataset)))
        metrics = self._summarise(per_seed)
        note = selection_note(self.runner.protocol)
        if note:
            print_log(note, logger='current', level=logging.WARNING)
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Sequence[dict]) -> None:
        """mmengine's test iteration, with autocast to ``amp_dtype`` (its own knows float16 only)."""
        self.runner.call_hook('before_test_iter', batch_idx=idx, data_batch=data_batch)
        dtype = None if self.amp_dtype is None else getattr(torch, self.amp_dtype)
        with autocast(enabled=dtype is not None, dtype=dtype):
            outputs = self.runner.model.test_step(data_batch)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook('after_test_iter', batch_idx=idx, data_batch=data_batch, outputs=outputs)

    def _summarise(self, per_seed: List[Dict[str, float]]) -> Dict[str, float]:
        keys = list(per_seed[0])
        table = PrettyTable(['seed', *keys])
        for seed, m in zip(self.seeds, per_seed):
            table.add_row([seed, *[f'{m[k]:.2f}' for k in keys]])
        summary: Dict[str, float] = {}
        for k in keys:
            s = mean_ci95([m[k] for m in per_seed])
            summary[k], summary[f'{k}_ci95'] = s['mean'], s['ci95']
        table.add_row(['mean +- ci95', *[f"{summary[k]:.2f} +- {summary[f'{k}_ci95']:.2f}" for k in keys]])
        print_log('results over episode seeds:\n' + table.get_string(), logger='current')
        return summary
