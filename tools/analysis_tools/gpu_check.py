"""One-call check of the static-shape head on a GPU: speed, memory, agreement, host synchronisations.

For each mode and precision it times our model of CONFIG (recipe weights, the flat
benchmark episodes of ``benchmark.py``, from ``ifa_mmseg/analysis/benchmark.py``) with the
head's two self-support formulations, ``self_support_impl='select'`` (image by image over
the selected pixels; the CPU default) and ``'masked'`` (all images at once, the selection
as an attention mask; the CUDA default):

- ``source``: a source-training step (5 loss terms, backward, SGD), B=``--train-batch``;
- ``ifa``: an IFA-adaptation step (9 loss terms), B=``--train-batch``;
- ``eval``: the inference forward under ``no_grad``, B=``--eval-batch`` (episodes/s).

One process and one model per mode; the implementation is switched on the head between
passes, and the timed passes alternate between the two (order alternating per round), so
load from other jobs falls on both alike. Before the timed passes, each implementation
runs one pass from the same initial weights; their outputs (logits in eval, loss terms in
training) are compared (``rel diff``: largest relative difference, masked against
select). Peak memory (CUDA: ``max_memory_allocated``) is taken over one more pass of each
alone. On CUDA, one training and one eval pass per implementation also run under
``torch.cuda.set_sync_debug_mode('warn')``, and the synchronisations it reports are
counted (the ``masked`` path should have none in the head).

It prints one row per (mode, precision, implementation), then the ratios
(masked/select speed-up; bf16/fp32). ``--json`` also writes every measurement.

Examples::

    # on a GPU machine, in one call (about 2-4 minutes on an H200 at 400 px)
    python tools/analysis_tools/gpu_check.py --json gpu_check.json
    # smoke run on a CPU
    python tools/analysis_tools/gpu_check.py --device cpu --size 64 --repeats 1
"""
import argparse
import copy
import json
import os
import statistics
import sys
import time
import warnings
from typing import List, Optional, Sequence

import torch

from ifa_mmseg.analysis.benchmark import BackboneClock, build_ours, make_step, rel_diff, sync_fn

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(REPO_ROOT, 'configs', 'ifa', 'deepglobe_1shot.py')
IMPLS = ('select', 'masked')
MODES = ('source', 'ifa', 'eval')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Static-shape head against the selecting one: speed, memory, '
                                                 'agreement and host synchronisations.')
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG, help='model config (default: Deepglobe 1-shot)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', nargs='+', choices=['fp32', 'bf16'], default=['fp32', 'bf16'])
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES))
    parser.add_argument('--impls', nargs='+', choices=IMPLS, default=list(IMPLS))
    parser.add_argument('--size', type=int, default=400, help='image side')
    parser.add_argument('--shot', type=int, default=1)
    parser.add_argument('--train-batch', type=int, default=12, help='episodes per training step')
    parser.add_argument('--eval-batch', type=int, default=96, help='episodes per eval step')
    parser.add_argument('--warmup', type=int, default=2, help='untimed passes per implementation (at least 1)')
    parser.add_argument('--repeats', type=int, default=5, help='timed passes per implementation')
    parser.add_argument('--seed', type=int, default=1, help='episode seed')
    parser.add_argument('--no-sync-check', action='store_true', help='skip the sync-debug passes (CUDA only)')
    parser.add_argument('--json', help='also write every measurement to this file')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    args.warmup = max(args.warmup, 1)
    return args


def set_impl(model: torch.nn.Module, impl: str) -> None:
    """Switch the head's self-support formulation in place."""
    model.decode_head.self_support_impl = impl
    model.decode_head.ssp_cfg['impl'] = impl


def count_syncs(step) -> int:
    """Host synchronisations that ``torch.cuda.set_sync_debug_mode('warn')`` reports during ``step()``."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode('default')
    torch.cuda.synchronize()
    return sum('synchroniz' in str(w.message) for w in caught)


def check_mode(args: argparse.Namespace, mode: str, amp: str) -> List[dict]:
    """All implementations for one (mode, precision): one result dict each."""
    batch = args.eval_batch if mode == 'eval' else args.train_batch
    spec = dict(impl='ours', config=args.config, device=args.device, amp=amp, mode=mode, batch=batch,
                shot=args.shot, size=args.size, seed=args.seed, threads=None, profile=False, official_root=None)
    torch.manual_seed(0)
    model, backbone, forward = build_ours(spec)
    model.to(args.device)
    initial = copy.deepcopy(model.state_dict())
    sync = sync_fn(args.device)
    clock = BackboneClock(getattr(model, backbone[0]), getattr(model, backbone[-1]), sync=sync)
    steps = {}
    results = {impl: dict(mode=mode, amp=amp, impl=impl, batch=batch, shot=args.shot, size=args.size,
                          device=args.device, times=[], backbone_times=[]) for impl in args.impls}
    outputs = {}
    for impl in args.impls:  # the first pass of each from the same weights: outputs compared
        model.load_state_dict(initial)
        set_impl(model, impl)
        steps[impl] = make_step(model, forward, spec, clock)
        outputs[impl] = {k: v.float().cpu() for k, v in steps[impl]().items()}
    for impl in args.impls:  # memory, then the remaining warm-up passes
        set_impl(model, impl)
        sync()
        if args.device == 'cuda':
            torch.cuda.reset_peak_memory_stats()
        steps[impl]()
        sync()
        results[impl]['peak_memory'] = torch.cuda.max_memory_allocated() if args.device == 'cuda' else None
        for _ in range(args.warmup - 1):
            steps[impl]()
        if args.device == 'cuda' and not args.no_sync_check:
            results[impl]['syncs'] = count_syncs(steps[impl])
    for r in range(args.repeats):
        for impl in (args.impls[::-1] if r % 2 else args.impls):
            set_impl(model, impl)
            sync()
            start = time.perf_counter()
            steps[impl]()
            sync()
            results[impl]['times'].append(time.perf_counter() - start)
            results[impl]['backbone_times'].append(clock.forward + clock.backward)
    for impl in args.impls:
        res = results[impl]
        res['median'] = statistics.median(res['times'])
        res['backbone_median'] = statistics.median(res['backbone_times'])
        res['episodes_per_s'] = batch / res['median']
        res['rel_diff'] = rel_diff(outputs[impl], outputs['select']) if 'select' in outputs else None
    del model, steps
    if args.device == 'cuda':
        torch.cuda.empty_cache()
    return [results[impl] for impl in args.impls]


def row(r: dict) -> str:
    mem = '-' if r['peak_memory'] is None else f'{r["peak_memory"] / 2 ** 30:.2f}'
    diff = '-' if r['rel_diff'] is None else f'{r["rel_diff"]:.1e}'
    head = r['median'] - r['backbone_median']
    return (f'{r["mode"]:<7}{r["batch"]:>4}{r["shot"]:>3} {r["amp"]:<5}{r["impl"]:<8}'
            f'{r["median"]:8.4f} [{min(r["times"]):.4f}-{max(r["times"]):.4f}]'
            f'{r["backbone_median"]:9.4f}{head:9.4f}{r["episodes_per_s"]:9.1f}{mem:>8}{diff:>9}'
            f'{r.get("syncs", "-"):>6}')


def ratio_lines(results: List[dict]) -> List[str]:
    """masked/select speed-up per (mode, precision) and bf16/fp32 per (mode, implementation)."""
    by = {(r['mode'], r['amp'], r['impl']): r for r in results}
    lines = []
    for (mode, amp, impl), r in by.items():
        if impl == 'masked' and (mode, amp, 'select') in by:
            sel = by[mode, amp, 'select']
            head = (sel['median'] - sel['backbone_median']) / max(r['median'] - r['backbone_median'], 1e-9)
            lines.append(f'{mode:<7}{amp:<5} masked vs select: speed-up {sel["median"] / r["median"]:.2f}x '
                         f'(head {head:.2f}x)')
    for (mode, amp, impl), r in by.items():
        if amp == 'bf16' and (mode, 'fp32', impl) in by:
            fp32 = by[mode, 'fp32', impl]['median']
            lines.append(f'{mode:<7}{impl:<7} bf16 vs fp32: speed-up {fp32 / r["median"]:.2f}x')
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    args = parse_args(argv)
    device = torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'
    print(f'device: {device}; torch {torch.__version__}; size {args.size}, K={args.shot}, '
          f'warmup {args.warmup}, repeats {args.repeats}')
    print(f'{"mode":<7}{"B":>4}{"K":>3} {"amp":<5}{"impl":<8}{"s/step [min-max]":<27}{"backbone":>9}{"head":>9}'
          f'{"ep/s":>9}{"mem GB":>8}{"rel diff":>9}{"syncs":>6}')
    results = []
    for mode in args.modes:
        for amp in args.amp:
            for r in check_mode(args, mode, amp):
                results.append(r)
                print(row(r), flush=True)
    print('"head" is the step less the backbone (head, loss, backward of the head, SGD); '
          '"rel diff": outputs against select; "syncs": host synchronisations reported in one training '
          'or eval pass under sync debug mode (CUDA only)')
    for line in ratio_lines(results):
        print(line)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(device=device, torch=torch.__version__, args=vars(args), results=results), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
