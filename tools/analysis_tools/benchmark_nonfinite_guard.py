"""What the non-finite guard costs: an evaluation and a training step with and without its checks, in one run.

The guard's per-step work is timed beside the step it guards, on the same episodes and weights:

- ``eval``: the model's ``test_step`` on a batch of episodes; the guard is what
  ``FewShotIoUMetric.process`` takes more when the outputs carry their logits (it counts each
  episode's NaN/inf logits and sends the count to the host with the pixel counts) than
  without them;
- ``train``: ``train_step`` (forward, the IFA loss, backward, SGD step), then
  ``NonFiniteCheckHook.after_train_iter`` (it reads the loss terms mmengine's
  ``RuntimeInfoHook`` has already copied to the host).

Per row: the step, the guard alone, and ``(step + guard) / step``. ``before_save_checkpoint``
runs once per saved checkpoint (one finiteness reduction per tensor), also timed.

Example (one thread, as the measurements in docs/benchmarks.md)::

    OMP_NUM_THREADS=1 python tools/analysis_tools/benchmark_nonfinite_guard.py configs/ifa/deepglobe_1shot.py
"""
import argparse
import statistics
import time
from types import SimpleNamespace
from typing import Callable, Dict, List

import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS

from ifa_mmseg.engine.hooks import NonFiniteCheckHook
from ifa_mmseg.evaluation import FewShotIoUMetric
from ifa_mmseg.structures import FewShotDataSample, FewShotSampleList
from ifa_mmseg.utils.official_recipe import make_episodes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Cost of the non-finite guard per evaluation and training step')
    parser.add_argument('config', help='model config (random weights; nothing is downloaded)')
    parser.add_argument('--size', type=int, default=400, help='image side')
    parser.add_argument('--batch', type=int, default=4, help='episodes per step')
    parser.add_argument('--repeats', type=int, default=5, help='timed repetitions (after one untimed)')
    parser.add_argument('--threads', type=int, help='torch intra-op threads')
    return parser.parse_args()


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def episode_batch(batch: int, size: int) -> Dict[str, object]:
    ep = make_episodes(batch, 1, size, seed=1)
    samples = []
    for b in range(batch):
        sample = FewShotDataSample(metainfo=dict(episode=b, class_id=0))
        sample.gt_sem_seg = PixelData(data=ep['query_mask'][b][None])
        samples.append(sample)
    return dict(inputs=ep['query'], data_samples=FewShotSampleList(
        samples, support_imgs=ep['supports'], support_masks=ep['support_masks'].long()))


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    init_default_scope('mmseg')
    cfg = Config.fromfile(args.config)
    cfg.model.backbone.init_cfg = None
    cfg.model.data_preprocessor = None  # the episodes are normalised already
    model = MODELS.build(cfg.model)
    data = episode_batch(args.batch, args.size)

    model.eval()
    outputs = model.test_step(data)
    dicts = [s.to_dict() for s in outputs]
    without_logits = [{k: v for k, v in d.items() if k != 'seg_logits'} for d in dicts]  # no NaN/inf count to take
    metric = FewShotIoUMetric(protocols=('standard', ))
    rows = [('eval', median_seconds(lambda: model.test_step(data), args.repeats),
             median_seconds(lambda: metric.process({}, dicts), args.repeats)
             - median_seconds(lambda: metric.process({}, without_logits), args.repeats))]

    model.train()
    optim = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=1e-6)))
    hub = MessageHub.get_instance('benchmark_nonfinite_guard')
    log_vars = model.train_step(data, optim)
    for key, value in log_vars.items():
        hub.update_scalar(f'train/{key}', value)
    runner = SimpleNamespace(message_hub=hub, optim_wrapper=optim, iter=0, epoch=0, train_loop=None)
    hook = NonFiniteCheckHook()
    rows.append(('train', median_seconds(lambda: model.train_step(data, optim), args.repeats),
                 median_seconds(lambda: hook.after_train_iter(runner, 0, data, log_vars), args.repeats)))
    checkpoint = dict(state_dict=model.state_dict())
    save_check = median_seconds(lambda: hook.before_save_checkpoint(runner, checkpoint), args.repeats)

    print(f'{args.config}: {args.batch} episodes of {args.size} px, {torch.get_num_threads()} threads')
    print('| step | step (s) | guard (s) | (step + guard) / step |\n|---|---|---|---|')
    for name, step, guard in rows:
        print(f'| {name} | {step:.3f} | {guard:.2e} | {(step + guard) / step:.5f} |')
    print(f'before_save_checkpoint (once per saved checkpoint): {save_check:.2e} s')


if __name__ == '__main__':
    main()
