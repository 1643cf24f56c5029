"""Speed, memory and FLOPs of the IFA model per step, optionally against the official code.

For every (device, precision, mode, B, K) this times one *step* on the same episodes and
weights (:func:`ifa_mmseg.analysis.benchmark.benchmark_episodes`, weights of
``ifa_mmseg/utils/official_recipe.py``):

- ``eval``: the inference forward (``mode='tensor'``: ``q_refine`` and ``q1``) under ``no_grad``;
- ``source``: a source-training step: forward, the official ``train.py`` loss (5 terms),
  backward, SGD step;
- ``ifa``: an IFA-adaptation step, the same with the official ``ifa.py`` loss (9 terms).

Ours is the model of CONFIG (its head's ``loss_weights`` set per mode). With
``--official-root`` the official ``IFA_MatchingNet`` (imported from that checkout, never
copied) runs on the same inputs and weights, fed, frozen and trained as the official
scripts do (without their numpy round trip of the batch).

Every (implementation, device, precision, mode, B, K) runs in its own fresh Python
process, so its peak memory (``ru_maxrss``; on CUDA ``max_memory_allocated``) belongs to
that configuration alone. Both implementations' processes import the same modules and
build the same weights; "+step" is the peak above the process's memory before its first
pass. Our process and the official one live together and take turns pass by pass, the
order alternating, so a burst of load from other jobs falls on both alike. Per process:
a first untimed pass counts FLOPs (``FlopCounterMode``; the backbone's are one image's
times B*(K+1)), ``--warmup - 1`` more untimed passes, then ``--repeats`` timed ones; the
outputs of the second pass are kept and compared (ours against the official code, a
compiled model against the eager one with ``--compile``, bf16 against fp32). The
backbone's share of a pass is timed with module and
gradient hooks (its forward, and its backward from the moment the gradient reaches the
features); "head" is the rest (head, loss, optimizer). Last, each process measures the
GEMM rate its FLOP rates are compared with: the better of ``torch.mm`` and a 1x1
convolution of the same size (on CPU they run in MKL and oneDNN).

Example::

    python tools/analysis_tools/benchmark.py configs/ifa/deepglobe_1shot.py --official-root /path/to/IFA
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine import Config

from ifa_mmseg.analysis.benchmark import (MODES, Worker, WorkerError, cpu_name, rel_diff, run_step_worker,
                                       summary)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_case(text: str) -> Tuple[int, int]:
    """``'BxK'`` -> (episodes per batch, shots)."""
    try:
        b, k = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected BxK such as 4x1, got {text!r}') from None
    return b, k


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Speed, memory and FLOPs of the IFA model per step.')
    parser.add_argument('config', help='model config (its model is built; weights come from the test recipe)')
    parser.add_argument('--size', type=int, default=400, help='image side (the official pipeline uses 400)')
    parser.add_argument('--cases', type=parse_case, nargs='+', default=[(1, 1), (4, 1), (1, 5)],
                        help='BxK: episodes per batch x shots')
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES))
    parser.add_argument('--device', nargs='+', choices=['cpu', 'cuda'],
                        help='default: cpu, and cuda when available')
    parser.add_argument('--amp', nargs='+', choices=['fp32', 'bf16'],
                        help='precisions (bf16 = bfloat16 autocast); default: fp32 on CPU, fp32 and bf16 on CUDA')
    parser.add_argument('--warmup', type=int, default=1, help='untimed passes (the first counts FLOPs)')
    parser.add_argument('--repeats', type=int, default=3, help='timed passes')
    parser.add_argument('--threads', type=int, help='torch intra-op threads (default: torch default)')
    parser.add_argument('--seed', type=int, default=1, help='episode seed (see benchmark_episodes)')
    parser.add_argument('--profile', action='store_true', help='print a torch.profiler table of one more pass')
    parser.add_argument('--compile', action='store_true',
                        help='also time ours with its backbone under torch.compile (rows "ours+c")')
    parser.add_argument('--official-root', help='checkout of the official IFA code, to time it too')
    parser.add_argument('--json', help='also write every measurement to this file')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.repeats < 1:
        parser.error('--warmup and --repeats must be at least 1')
    if args.device and 'cuda' in args.device and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    return args


def environment(args: argparse.Namespace, devices: List[str]) -> List[str]:
    """Hardware and software lines for the report."""
    import mmengine
    import mmseg
    mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30
    lines = [f'cpu: {cpu_name()}, {os.cpu_count()} cores, {mem:.0f} GiB; torch threads: '
             f'{args.threads or torch.get_num_threads()}',
             f'python {platform.python_version()}, torch {torch.__version__}, mmengine {mmengine.__version__}, '
             f'mmseg {mmseg.__version__}, {platform.platform()}']
    if 'cuda' in devices:
        lines.append(f'cuda: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}, '
                     f'cuDNN {torch.backends.cudnn.version()}')
    return lines


def run_configuration(specs: List[dict], warmup: int, repeats: int) -> List[dict]:
    """Our and the official process, alive together, taking turns pass by pass.

    A burst of load from other jobs then falls on both alike; the order within a round
    alternates. Each process measures its GEMM rate at the end while the other waits.
    """
    workers: List[Worker] = []

    def ask(worker: Worker, command: Optional[str] = None) -> object:
        """``command``'s answer (``None``: the first, 'ready'); a failure names the configuration."""
        try:
            if command is None:
                return worker.answer()
            return worker.finish() if command == 'finish' else worker.send(command)
        except WorkerError as err:
            spec = worker.spec
            raise WorkerError(f'benchmark worker failed ({spec["impl"]} {spec["mode"]} B={spec["batch"]} '
                              f'K={spec["shot"]}): {err}\n{err.log_tail}') from None

    try:
        for spec in specs:
            workers.append(Worker([os.path.abspath(__file__), spec['config']], spec, spec['out_file'][:-3] + '.log',
                                  cwd=REPO_ROOT))
            ask(workers[-1])
        for i, command in enumerate(['flops'] + ['warmup'] * (warmup - 1) + ['step'] * repeats):
            for worker in workers[::-1] if i % 2 else workers:
                ask(worker, command)
        return [ask(worker, 'finish') for worker in workers]
    finally:
        for worker in workers:  # after a failure the others still wait for a command: end them
            worker.stop()


def peak_memory(r: dict) -> Tuple[float, float]:
    """(peak, peak above the pre-step baseline) in bytes: CUDA allocations on GPU, else RSS."""
    if r['cuda_peak'] is not None:
        return r['cuda_peak'], r['cuda_peak']
    return r['peak_rss'], r['peak_rss'] - r['base_rss']


def row(r: dict) -> str:
    """One implementation's line: times, split, floor, memory, FLOPs and their GEMM fraction."""
    b = r['batch']
    step = statistics.median(r['times'])
    bb = statistics.median(r['backbone_times'])
    head = step - bb
    gemm = max(r['gemm_mm'], r['gemm_conv'])
    floor = bb + r['flops_head'] / gemm
    peak, above = peak_memory(r)
    return (f'{r["impl"]:<8} {r["device"]:<4} {r["amp"]:<4} {r["mode"]:<6} {b:>2} {r["shot"]:>2} '
            f'{summary(r["times"], 3, 7):>23} {step / b:>6.3f} {b / step:>5.2f} {bb:>6.3f} {head:>6.3f} '
            f'{floor:>6.2f} {step / floor:>5.2f} {peak / 2 ** 30:>5.2f} {above / 2 ** 30:>5.2f} '
            f'{r["flops_backbone"] / 1e9:>6.0f} {r["flops_head"] / 1e9:>6.0f} '
            f'{100 * r["flops_backbone"] / bb / gemm:>4.0f} {100 * r["flops_head"] / max(head, 1e-9) / gemm:>4.0f} '
            f'{gemm / 1e9:>5.0f}')


ROW_HEADER = (f'{"impl":<8} {"dev":<4} {"prec":<4} {"mode":<6} {"B":>2} {"K":>2} {"s/step [min-max]":>23} '
              f'{"s/ep":>6} {"ep/s":>5} {"bb s":>6} {"head s":>6} {"floor":>6} {"x fl":>5} {"GB pk":>5} '
              f'{"+step":>5} {"GF bb":>6} {"GF hd":>6} {"%Gbb":>4} {"%Ghd":>4} {"GEMM":>5}')
ROW_LEGEND = ('s/step: median [min-max] of the timed passes; s/ep, ep/s: per episode; bb s / head s: backbone '
              '(forward + backward) and the rest; floor: bb s + head FLOPs at the GEMM rate; x fl: s/step / floor; '
              'GB pk: peak memory (RSS; CUDA: allocated), +step: above the process before the first pass; '
              'GF: GFLOP per step; %G: FLOP rate in % of GEMM (GFLOP/s, measured in the same process)')
RATIO_HEADER = (f'{"dev":<4} {"prec":<4} {"mode":<6} {"B":>2} {"K":>2} {"speed-up":>8} {"bb":>5} {"head":>5} '
                f'{"peak":>5} {"+step":>5} {"max rel diff":>12}')


def ratio_row(ours: dict, official: dict, diff: Optional[float]) -> str:
    """Official time / ours (step, backbone, rest), ours / official memory, output difference."""
    step = [statistics.median(r['times']) for r in (ours, official)]
    bb = [statistics.median(r['backbone_times']) for r in (ours, official)]
    (peak_o, above_o), (peak_f, above_f) = peak_memory(ours), peak_memory(official)
    text = '-' if diff is None else f'{diff:.1e}'
    return (f'{ours["device"]:<4} {ours["amp"]:<4} {ours["mode"]:<6} {ours["batch"]:>2} {ours["shot"]:>2} '
            f'{step[1] / step[0]:>8.2f} {bb[1] / bb[0]:>5.2f} {(step[1] - bb[1]) / max(step[0] - bb[0], 1e-9):>5.2f} '
            f'{peak_o / peak_f:>5.2f} {above_o / above_f:>5.2f} {text:>12}')


def precision_rows(results: List[dict]) -> List[str]:
    """Per (device, mode, B, K) where ours ran in both: bf16 outputs against the fp32 ones."""
    fp32 = {(r['device'], r['mode'], r['batch'], r['shot']): r['out_file'] for r in results
            if r['impl'] == 'ours' and r['amp'] == 'fp32'}
    lines = []
    for r in results:
        key = (r['device'], r['mode'], r['batch'], r['shot'])
        if r['impl'] == 'ours' and r['amp'] == 'bf16' and key in fp32:
            diff = rel_diff(torch.load(r['out_file']), torch.load(fp32[key]))
            lines.append(f'{key[0]:<4} {key[1]:<6} {key[2]:>2} {key[3]:>2} {diff:>12.1e}')
    return lines


def benchmark(args: argparse.Namespace) -> List[str]:
    """Run every configuration; print and return the report lines."""
    devices = args.device or ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    lines: List[str] = []

    def emit(line: str = '') -> None:
        lines.append(line)
        print(line, flush=True)

    for line in environment(args, devices):
        emit(line)
    emit(f'size {args.size}x{args.size}, warm-up {args.warmup}, repeats {args.repeats}, '
         f'load average {" ".join(f"{v:.2f}" for v in os.getloadavg())}')
    impls = ['ours'] + (['ours+c'] if args.compile else []) + (['official'] if args.official_root else [])
    results, ratios, compiled = [], [], []
    emit(ROW_LEGEND)
    emit(ROW_HEADER)
    with tempfile.TemporaryDirectory(prefix='ifa_benchmark_') as tmp:
        for device in devices:
            for amp in args.amp or (['fp32'] if device == 'cpu' else ['fp32', 'bf16']):
                for mode in args.modes:
                    for batch, shot in args.cases:
                        specs = [dict(impl=impl, config=os.path.abspath(args.config), device=device, amp=amp,
                                      mode=mode, batch=batch, shot=shot, size=args.size, seed=args.seed,
                                      threads=args.threads, profile=args.profile, official_root=args.official_root,
                                      out_file=os.path.join(tmp, f'{impl}_{device}_{amp}_{mode}_{batch}x{shot}.pt'))
                                 for impl in impls]
                        done = {r['impl']: r for r in run_configuration(specs, args.warmup, args.repeats)}
                        for r in done.values():
                            emit(row(r))
                            if args.profile:
                                emit(r.pop('profile'))
                        results.extend(done.values())
                        # B>1 and K>1 training pairs supports differently unless support_order='official'
                        comparable = mode == 'eval' or batch == 1 or shot == 1
                        for table, faster, slower, same in ((ratios, 'ours', 'official', comparable),
                                                            (compiled, 'ours+c', 'ours', True)):
                            if faster in done and slower in done:
                                diff = rel_diff(*(torch.load(done[k]['out_file']) for k in (faster, slower)))
                                table.append(ratio_row(done[faster], done[slower], diff if same else None))
        precision = precision_rows(results)  # reads the saved outputs
    if ratios:
        emit()
        emit('ours vs official: speed-up = official time / ours (step, backbone, rest); peak, +step = ours / '
             'official memory; max rel diff = largest relative difference of the outputs of the second pass '
             '(eval: logits, training: loss terms; "-": B>1 and K>1 pair supports differently: docs/differences.md)')
        emit(RATIO_HEADER)
        for line in ratios:
            emit(line)
    if compiled:
        emit()
        emit('ours with torch.compile (backbone) vs eager: speed-up = eager time / compiled; peak, +step = compiled / '
             'eager memory; max rel diff of the outputs of the second pass')
        emit(RATIO_HEADER)
        for line in compiled:
            emit(line)
    if precision:
        emit()
        emit('ours, bf16 autocast vs fp32 on the same inputs: largest relative difference of the outputs '
             'of the second pass (eval: logits, training: loss terms)')
        emit(f'{"dev":<4} {"mode":<6} {"B":>2} {"K":>2} {"max rel diff":>12}')
        for line in precision:
            emit(line)
    emit(f'load average at the end {" ".join(f"{v:.2f}" for v in os.getloadavg())}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(environment=lines, results=results), f, indent=1)
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.worker:
        run_step_worker(json.loads(args.worker), sys.stdin)
        return 0
    backbone = Config.fromfile(args.config).model.backbone
    if args.official_root and (backbone.type, backbone.get('depth', 50)) != ('IFAResNet', 50):
        raise SystemExit('--official-root compares with the official R-50: CONFIG must build IFAResNet(depth=50)')
    benchmark(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
