"""Evaluation over several episode seeds, reported as mean and 95% confidence interval."""
import copy
import csv
import logging
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.hooks import IterTimerHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop
from mmengine.runner.amp import autocast
from mmseg.registry import LOOPS
from prettytable import PrettyTable
from scipy import stats

from ..evaluation.fewshot_metric import FULL_TABLE_MAX_CLASSES, per_class_text
from ..utils.cli import AMP_DTYPES
from ..utils.errors import NonFiniteError
from .protocol import ProtocolError, resolve_config, selection_note, write_protocol


def mean_ci95(values: Sequence[float]) -> Dict[str, float]:
    """Mean and half-width of the Student-t 95% confidence interval of the mean."""
    v = np.asarray(values, dtype=np.float64)
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
    return dict(mean=float(v.mean()), ci95=half)


def adapt_model_to_resolved(model: torch.nn.Module, cfg: Config) -> None:
    """Give a model built from the unresolved config (by a plain Runner) the resolved config's test-time settings.

    The resolver changes one model key, ``test_cfg.episode_adaptation`` (``adaptation_labels='episode'``).

    Raises:
        ProtocolError: the config adapts per episode but the model cannot.
    """
    settings = cfg.model.get('test_cfg', {}).get('episode_adaptation')
    model = model.module if is_model_wrapper(model) else model
    if hasattr(model, 'set_episode_adaptation'):
        model.set_episode_adaptation(settings)
    elif settings:
        raise ProtocolError(f"adaptation_labels='episode': {type(model).__name__} has no per-episode adaptation "
                            '(set_episode_adaptation)')


@LOOPS.register_module()
class MultiSeedTestLoop(TestLoop):
    """Run the test episodes once per seed (official: seeds 0-4) and aggregate.

    The test dataloader is rebuilt for every seed with ``dataset.seed`` set, so each
    pass evaluates a different, reproducible set of episodes; the evaluator is
    computed per pass. Returned metrics keep their names (the mean over seeds) and gain
    ``<name>_ci95`` (half-width of the 95% interval over seeds).

    The log shows, per seed, the summary metrics (``mIoU``, ``FBIoU``, ``official.mIoU``)
    and their mean and interval; the per-class IoUs (``IoU.<class>``) of every seed, their
    mean and interval go to ``work_dir/per_class_iou.csv`` and to the log as a table, or
    with more than 20 classes as a summary (mean, worst and best 5), in which case the
    hooks (the logger's final line) get the summary metrics only. Within a seed the
    logger hook's ``Iter(test) [k/n]`` lines carry that seed's ETA.

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
            cfg = resolve_config(runner.cfg)
            runner.protocol = cfg.protocol.to_dict()
            dataloader, evaluator, seeds = cfg.test_dataloader, cfg.test_evaluator, cfg.test_cfg.seeds
            adapt_model_to_resolved(runner.model, cfg)
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
        seconds: List[float] = []
        for i, seed in enumerate(self.seeds):
            self.current_seed = seed
            if i > 0:
                self.dataloader = self.runner.build_dataloader(self._seeded_cfg(seed), seed=self.runner.seed)
            eta = ''
            if seconds:
                left = sum(seconds) / len(seconds) * (len(self.seeds) - i)
                eta = f'; the last seed took {seconds[-1]:.0f} s, about {left:.0f} s left for this and the next seeds'
            print_log(f'episode seed {seed} ({i + 1}/{len(self.seeds)}): '
                      f'{len(self.dataloader.dataset)} episodes in {len(self.dataloader)} batches{eta}',
                      logger='current')
            start = time.time()
            self._restart_timers()
            try:
                for idx, data_batch in enumerate(self.dataloader):
                    self.run_iter(idx, data_batch)
                per_seed.append(self.evaluator.evaluate(len(self.dataloader.dataset)))
            except NonFiniteError as err:
                raise NonFiniteError(f'episode seed {seed}: {err}') from None
            seconds.append(time.time() - start)
        metrics = self._summarise(per_seed)
        note = selection_note(self.runner.protocol)
        if note:
            print_log(note, logger='current', level=logging.WARNING)
        self.runner.call_hook('after_test_epoch', metrics=self._hook_metrics(metrics))
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

    def _restart_timers(self) -> None:
        """Each seed's ETA from its own iterations: the timer hook's test clock restarts with the seed."""
        for hook in self.runner.hooks:
            if isinstance(hook, IterTimerHook):
                hook.time_sec_test_val = 0
                hook.t = time.time()

    @staticmethod
    def _per_class_keys(keys: Sequence[str]) -> List[str]:
        return [k for k in keys if k.startswith('IoU.')]

    def _hook_metrics(self, metrics: Dict[str, float]) -> Dict[str, float]:
        """What the hooks (the logger's final line) get: without the per-class keys beyond 20 classes."""
        per_class = self._per_class_keys([k for k in metrics if not k.endswith('_ci95')])
        if len(per_class) <= FULL_TABLE_MAX_CLASSES:
            return metrics
        drop = set(per_class) | {f'{k}_ci95' for k in per_class}
        return {k: v for k, v in metrics.items() if k not in drop}

    def _summarise(self, per_seed: List[Dict[str, float]]) -> Dict[str, float]:
        keys = list(per_seed[0])
        summary: Dict[str, float] = {}
        for k in keys:
            s = mean_ci95([m[k] for m in per_seed])
            summary[k], summary[f'{k}_ci95'] = s['mean'], s['ci95']
        per_class = self._per_class_keys(keys)
        main = [k for k in keys if k not in per_class]
        table = PrettyTable(['seed', *main])
        for seed, m in zip(self.seeds, per_seed):
            table.add_row([seed, *[f'{m[k]:.2f}' for k in main]])
        table.add_row(['mean +- ci95', *[f"{summary[k]:.2f} +- {summary[f'{k}_ci95']:.2f}" for k in main]])
        print_log('results over episode seeds:\n' + table.get_string(), logger='current')
        if per_class:
            self._per_class_report(per_class, per_seed, summary)
        return summary

    def _per_class_report(self, keys: List[str], per_seed: List[Dict[str, float]],
                          summary: Dict[str, float]) -> None:
        """``work_dir/per_class_iou.csv`` (class, IoU per seed, mean, ci95) and its log table or summary."""
        names = [k[len('IoU.'):] for k in keys]
        path = osp.join(self.runner.work_dir, 'per_class_iou.csv')
        if is_main_process():
            os.makedirs(self.runner.work_dir, exist_ok=True)
            with open(path, 'w', newline='') as f:
                writer = csv.writer(f)
                writer.writerow(['class', *[f'seed_{s}' for s in self.seeds], 'mean', 'ci95'])
                for name, k in zip(names, keys):
                    writer.writerow([name, *[f'{m[k]:.4f}' for m in per_seed], f'{summary[k]:.4f}',
                                     f"{summary[f'{k}_ci95']:.4f}"])
        if len(keys) <= FULL_TABLE_MAX_CLASSES:
            table = PrettyTable(['class', *[f'seed {s}' for s in self.seeds], 'mean +- ci95'])
            for name, k in zip(names, keys):
                table.add_row([name, *[f'{m[k]:.2f}' for m in per_seed],
                               f"{summary[k]:.2f} +- {summary[f'{k}_ci95']:.2f}"])
            text = 'per-class fg IoU over episode seeds:\n' + table.get_string()
        else:
            text = per_class_text({name: summary[k] for name, k in zip(names, keys)},
                                  'per-class fg IoU, mean over episode seeds')
        print_log(f'{text}\nper-class table (every class, every seed): {path}', logger='current')
