"""Speed, memory and FLOPs of the IFA model per step, optionally against the official code.

For every (device, precision, mode, B, K) this times one *step* on the same episodes and
weights (:func:`benchmark_episodes`, weights of ``ifa_mmseg/utils/official_recipe.py``):

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
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine import Config
from torch import Tensor, nn

from ifa_mmseg.models.heads.ifa_head import IFA_LOSS_WEIGHTS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_utils import import_official, summary, working_dir  # noqa: E402

MODES = ('eval', 'source', 'ifa')
OUTPUT_KEYS = tuple(IFA_LOSS_WEIGHTS)  # the official training outputs, in order
# official train.py (source: the first 5 terms) and ifa.py (adaptation) losses, refine branch
LOSS_WEIGHTS = dict(source={k: IFA_LOSS_WEIGHTS[k] for k in OUTPUT_KEYS[:5]}, ifa=IFA_LOSS_WEIGHTS)
REPLY_TAG = 'BENCHMARK_REPLY '


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


# ----------------------------------------------------------------------------- worker side
class BackboneClock:
    """Wall time of the backbone inside a step, from module and gradient hooks.

    Forward: from the pre-hook of ``first`` to the hook of ``last`` (summed over calls).
    Backward: from the first gradient arriving at an output of ``last`` to
    :meth:`backward_done`. The autograd engine runs later-created nodes first, so the
    head's backward is over by then.
    """

    def __init__(self, first: nn.Module, last: nn.Module, sync: Callable[[], None]) -> None:
        self.sync = sync
        self.forward = self.backward = 0.0
        self._start: Optional[float] = None
        self._grad_start: Optional[float] = None
        first.register_forward_pre_hook(self._pre_hook)
        last.register_forward_hook(self._hook)

    def _now(self) -> float:
        self.sync()
        return time.perf_counter()

    def reset(self) -> None:
        self.forward = self.backward = 0.0
        self._grad_start = None

    def _pre_hook(self, module: nn.Module, args: tuple) -> None:
        self._start = self._now()

    def _hook(self, module: nn.Module, args: tuple, output) -> None:
        self.forward += self._now() - self._start
        for t in output if isinstance(output, (tuple, list)) else (output, ):
            if t.requires_grad:
                t.register_hook(self._grad_hook)

    def _grad_hook(self, grad: Tensor) -> None:
        if self._grad_start is None:
            self._grad_start = self._now()

    def backward_done(self) -> None:
        if self._grad_start is not None:
            self.backward += self._now() - self._grad_start


def sync_fn(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == 'cuda' else (lambda: None)


def region_means(images: Tensor, masks: Tensor) -> Tensor:
    """Every image's object and background replaced by their mean colour."""
    m = masks[..., None, :, :].to(images.dtype)
    fg = (images * m).sum((-2, -1), keepdim=True) / m.sum((-2, -1), keepdim=True).clamp_min(1)
    bg = (images * (1 - m)).sum((-2, -1), keepdim=True) / (1 - m).sum((-2, -1), keepdim=True).clamp_min(1)
    return m * fg + (1 - m) * bg


def benchmark_episodes(spec: dict) -> Dict[str, Tensor]:
    """The test recipe's episodes (``make_episodes``) without their pixel noise.

    With the recipe's random weights, the noisy images leave SSP 10-200 confident
    background pixels, where a trained model on real images selects most of the
    background. On the flat images (seed 1) every SSP step selects 1,500-2,300 of the
    2,500 cells of a 50x50 grid as background (and 12-370 as foreground), so the
    head's attention costs what it costs on real data.
    """
    from ifa_mmseg.utils.official_recipe import make_episodes
    ep = make_episodes(spec['batch'], spec['shot'], spec['size'], spec['seed'])
    ep['query'] = region_means(ep['query'], ep['query_mask'])
    ep['supports'] = region_means(ep['supports'], ep['support_masks'])
    return {k: v.to(spec['device']) for k, v in ep.items()}


def official_losses(outs: Sequence[Tensor], ep: Dict[str, Tensor], weights: Dict[str, float]) -> Dict[str, Tensor]:
    """Weighted CE terms of the official outputs, as official train.py / ifa.py add them."""
    mask_s = ep['support_masks'].transpose(0, 1).flatten(0, 1).long()  # cat(mask_s_list)
    return {k: F.cross_entropy(out, mask_s if k[0] == 's' else ep['query_mask'], ignore_index=255) * weights[k]
            for k, out in zip(OUTPUT_KEYS, outs) if k in weights}


def build_ours(spec: dict) -> Tuple[nn.Module, Tuple[str, ...], Callable]:
    """Our model of ``spec['config']`` with the recipe weights, its backbone's child names, its forward."""
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    from ifa_mmseg.models import convert_official
    from ifa_mmseg.utils.official_recipe import imagenet_state_dict

    cfg = Config.fromfile(spec['config'])
    if spec.get('cfg_options'):
        cfg.merge_from_dict(spec['cfg_options'])
    cfg = cfg.model
    cfg.backbone.init_cfg = None
    if spec['mode'] != 'eval':
        cfg.decode_head.loss_weights = LOSS_WEIGHTS[spec['mode']]
    model = MODELS.build(cfg)
    if cfg.backbone.type == 'IFAResNet':
        model.backbone.load_state_dict(convert_official(imagenet_state_dict(cfg.backbone.depth),
                                                        model.backbone.state_dict()))
    ep = benchmark_episodes(spec)
    samples = []
    for b in range(spec['batch']):
        sample = SegDataSample(metainfo=dict(img_shape=(spec['size'], ) * 2, ori_shape=(spec['size'], ) * 2))
        sample.gt_sem_seg = PixelData(data=ep['query_mask'][b][None])
        sample.support_imgs, sample.support_masks = ep['supports'][b], ep['support_masks'][b]
        samples.append(sample)

    def forward() -> Dict[str, Tensor]:
        if spec['mode'] == 'eval':
            return model(ep['query'], samples, mode='tensor')
        return model(ep['query'], samples, mode='loss')

    return model, ('backbone', ), forward


def build_official(spec: dict) -> Tuple[nn.Module, Tuple[str, ...], Callable]:
    """The official model with the recipe weights (via its own loader), frozen as train.py does."""
    from ifa_mmseg.utils.official_recipe import imagenet_state_dict

    net_cls = import_official(spec['official_root'], 'model.IFA_matching').IFA_MatchingNet
    with tempfile.TemporaryDirectory() as tmp, working_dir(tmp):  # it loads ./pretrained/resnet50.pth
        os.makedirs('pretrained')
        torch.save(imagenet_state_dict(50), os.path.join('pretrained', 'resnet50.pth'))
        model = net_cls('resnet50', refine=True, shot=spec['shot'])
    for p in [*model.layer0.parameters(), *model.layer1.parameters()]:
        p.requires_grad = False
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for p in m.parameters():
                p.requires_grad = False
    ep = benchmark_episodes(spec)
    img_s_list = [ep['supports'][:, k] for k in range(spec['shot'])]
    mask_s_list = [ep['support_masks'][:, k] for k in range(spec['shot'])]

    def forward():
        if spec['mode'] == 'eval':
            return dict(zip(('q_refine', 'q1'), model(img_s_list, mask_s_list, ep['query'], None)))
        for m in model.modules():  # train.py / ifa.py: BN back in eval mode after model.train()
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        outs = model(img_s_list, mask_s_list, ep['query'], ep['query_mask'])
        return {f'loss_{k}': v for k, v in official_losses(outs, ep, LOSS_WEIGHTS[spec['mode']]).items()}

    return model, ('layer0', 'layer1', 'layer2', 'layer3'), forward


def make_step(model: nn.Module, forward: Callable, spec: dict, clock: BackboneClock) -> Callable:
    """One eval forward or one training step (forward, loss, backward, SGD)."""
    train = spec['mode'] != 'eval'
    model.train(train)
    autocast = torch.autocast(spec['device'], dtype=torch.bfloat16, enabled=spec['amp'] == 'bf16')
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9,
                                weight_decay=5e-4) if train else None

    def step() -> Dict[str, Tensor]:
        clock.reset()
        if not train:
            with torch.no_grad(), autocast:
                return forward()
        with autocast:
            losses = forward()
        optimizer.zero_grad()
        sum(losses.values()).backward()
        clock.backward_done()
        optimizer.step()
        return {k: v.detach() for k, v in losses.items()}

    return step


def count_flops(fn: Callable[[], object]) -> Tuple[object, int]:
    """``fn()`` under FlopCounterMode: (its result, FLOPs of matrix products, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    # the CPU kernel of scaled_dot_product_attention has no entry in the FLOP registry
    cpu_sdpa = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
                lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v)}
    with FlopCounterMode(display=False, custom_mapping=cpu_sdpa) as counter:
        result = fn()
    return result, counter.get_total_flops()


def backbone_pass(model: nn.Module, backbone: Sequence[str], image: Tensor, spec: dict) -> None:
    """The backbone children in order on ``image``, plus a backward in training (grads cleared)."""
    train = spec['mode'] != 'eval'
    with torch.set_grad_enabled(train), torch.autocast(spec['device'], torch.bfloat16, enabled=spec['amp'] == 'bf16'):
        x = image
        for name in backbone:
            x = getattr(model, name)(x)
    if train:
        (x[-1] if isinstance(x, (tuple, list)) else x).float().sum().backward()
        model.zero_grad(set_to_none=True)


def step_flops(step: Callable[[], object], model: nn.Module, backbone: Sequence[str],
               spec: dict) -> Tuple[object, int, int]:
    """One ``step()`` under the FLOP counter: (its result, backbone FLOPs, the rest: head, loss, optimizer).

    The backbone's FLOPs are linear in the image count: one image's, times B*(K+1).
    """
    result, flops = count_flops(step)
    image = torch.randn(1, 3, spec['size'], spec['size'], device=spec['device'])
    _, one = count_flops(lambda: backbone_pass(model, backbone, image, spec))
    flops_backbone = one * spec['batch'] * (spec['shot'] + 1)
    return result, flops_backbone, flops - flops_backbone


def episode_flops(config: str, shot: int, size: int, mode: str = 'eval', batch: int = 1, seed: int = 1,
                  cfg_options: Optional[dict] = None) -> Dict[str, int]:
    """FLOPs of one step of our model of ``config`` on ``batch`` benchmark episodes, in this process.

    Returns ``backbone`` (B*(K+1) images) and ``head`` (the rest of the step: the head,
    and in training the loss, backward and SGD step); the head's share depends on the
    episodes (SSP's selections), here :func:`benchmark_episodes` with ``seed``.
    """
    spec = dict(impl='ours', config=config, device='cpu', amp='fp32', mode=mode, batch=batch, shot=shot,
                size=size, seed=seed, cfg_options=cfg_options)
    torch.manual_seed(0)
    model, backbone, forward = build_ours(spec)
    clock = BackboneClock(getattr(model, backbone[0]), getattr(model, backbone[-1]), sync=sync_fn('cpu'))
    _, flops_backbone, flops_head = step_flops(make_step(model, forward, spec, clock), model, backbone, spec)
    return dict(backbone=flops_backbone, head=flops_head)


def gemm_rate(device: str, amp: str, sync: Callable[[], None]) -> Tuple[float, float]:
    """FLOP/s of ``torch.mm`` and of a 1x1 convolution doing the same GEMM (median of 3 after 1)."""
    dtype = torch.bfloat16 if amp == 'bf16' else torch.float32
    # CPU bf16 products run at a tenth of the fp32 rate here: a smaller size keeps them at seconds
    n = 8192 if device == 'cuda' else 1024 if amp == 'bf16' else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    x = torch.randn(1, n, 64, n // 64, device=device, dtype=dtype)  # 1x1 conv: [n x n] @ [n x n]
    w = b[..., None, None]
    rates = []
    for fn in (lambda: a @ b, lambda: F.conv2d(x, w)):
        times = []
        for _ in range(4):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        rates.append(2 * n ** 3 / statistics.median(times[1:]))
    return rates[0], rates[1]


def current_rss() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def reply(payload: object) -> None:
    print(REPLY_TAG + json.dumps(payload), flush=True)


def run_worker(spec: dict, commands: Iterable[str]) -> dict:
    """Serve one (implementation, device, precision, mode, B, K) and return its measurements.

    ``commands`` (one per line from the parent): ``flops`` (the first untimed pass,
    counting FLOPs), ``warmup``, ``step`` (a timed pass), then ``finish`` (peak memory,
    profile, GEMM rate). Each is answered with a tagged line. The outputs of the second
    pass are saved for comparison: under ``FlopCounterMode`` a compiled module runs eagerly.
    """
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    if spec['threads']:
        torch.set_num_threads(spec['threads'])
    torch.manual_seed(0)
    sync = sync_fn(spec['device'])
    model, backbone, forward = (build_official if spec['impl'] == 'official' else build_ours)(spec)
    model.to(spec['device'])
    if spec['impl'] == 'ours+c':  # the backbone: static shapes; the head's selections are data-dependent
        model.backbone = torch.compile(model.backbone)
    clock = BackboneClock(getattr(model, backbone[0]), getattr(model, backbone[-1]), sync=sync)
    step = make_step(model, forward, spec, clock)
    result = dict(spec, times=[], backbone_times=[], base_rss=current_rss())
    if spec['device'] == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    reply('ready')
    save_outputs = False
    for command in commands:
        command = command.strip()
        if command == 'flops':
            _, result['flops_backbone'], result['flops_head'] = step_flops(step, model, backbone, spec)
            save_outputs = True
        elif command in ('warmup', 'step'):
            sync()
            start = time.perf_counter()
            outs = step()
            sync()
            if command == 'step':
                result['times'].append(time.perf_counter() - start)
                result['backbone_times'].append(clock.forward + clock.backward)
            if save_outputs:
                torch.save({k: v.float().cpu() for k, v in outs.items()}, spec['out_file'])
                save_outputs = False
        elif command == 'finish':
            result['peak_rss'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            result['cuda_peak'] = torch.cuda.max_memory_allocated() if spec['device'] == 'cuda' else None
            if spec['profile']:
                from torch.profiler import ProfilerActivity, profile
                activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if spec['device'] == 'cuda' else [])
                with profile(activities=activities) as prof:
                    step()
                sort = 'self_cuda_time_total' if spec['device'] == 'cuda' else 'self_cpu_time_total'
                result['profile'] = prof.key_averages().table(sort_by=sort, row_limit=20, max_name_column_width=40)
            result['gemm_mm'], result['gemm_conv'] = gemm_rate(spec['device'], spec['amp'], sync)
            reply(result)
            return result
        else:
            raise ValueError(f'unknown benchmark command {command!r}')
        reply('ok')
    raise RuntimeError('the benchmark parent went away')


# ----------------------------------------------------------------------------- parent side
def environment(args: argparse.Namespace, devices: List[str]) -> List[str]:
    """Hardware and software lines for the report."""
    import mmengine
    import mmseg
    cpu = platform.processor() or platform.machine()
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30
    lines = [f'cpu: {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; torch threads: '
             f'{args.threads or torch.get_num_threads()}',
             f'python {platform.python_version()}, torch {torch.__version__}, mmengine {mmengine.__version__}, '
             f'mmseg {mmseg.__version__}, {platform.platform()}']
    if 'cuda' in devices:
        lines.append(f'cuda: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}, '
                     f'cuDNN {torch.backends.cudnn.version()}')
    return lines


class WorkerError(RuntimeError):
    """A benchmark worker process ended without answering (its log's tail in the message)."""


class Worker:
    """One configuration served by a fresh interpreter (``run_worker``), driven line by line."""

    def __init__(self, spec: dict, log_dir: str) -> None:
        self.spec = spec
        self.log = spec['out_file'][:-3] + '.log'
        with open(self.log, 'w') as log:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), spec['config'], '--worker', json.dumps(spec)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO_ROOT)
        try:
            self.answer()  # 'ready'
        except WorkerError:
            self.proc.wait()
            raise

    def answer(self) -> object:
        for line in self.proc.stdout:
            if line.startswith(REPLY_TAG):
                return json.loads(line[len(REPLY_TAG):])
        with open(self.log) as log:
            raise WorkerError(f'benchmark worker failed ({self.spec["impl"]} {self.spec["mode"]} '
                              f'B={self.spec["batch"]} K={self.spec["shot"]}):\n{log.read()[-3000:]}')

    def send(self, command: str) -> object:
        self.proc.stdin.write(command + '\n')
        self.proc.stdin.flush()
        return self.answer()

    def finish(self) -> dict:
        result = self.send('finish')
        self.proc.wait()
        return result


def run_configuration(specs: List[dict], warmup: int, repeats: int, log_dir: str) -> List[dict]:
    """Our and the official process, alive together, taking turns pass by pass.

    A burst of load from other jobs then falls on both alike; the order within a round
    alternates. Each process measures its GEMM rate at the end while the other waits.
    """
    workers: List[Worker] = []
    try:
        for spec in specs:
            workers.append(Worker(spec, log_dir))
        for i, command in enumerate(['flops'] + ['warmup'] * (warmup - 1) + ['step'] * repeats):
            for worker in workers[::-1] if i % 2 else workers:
                worker.send(command)
        return [worker.finish() for worker in workers]
    except BaseException:
        for worker in workers:  # the others still wait for a command: end them
            if worker.proc.poll() is None:
                worker.proc.kill()
            worker.proc.wait()
        raise


def rel_diff(ours: Dict[str, Tensor], official: Dict[str, Tensor]) -> float:
    """Largest relative difference over the common outputs (logits in eval, loss terms in training)."""
    return max(float((ours[k] - official[k]).norm() / official[k].norm().clamp_min(1e-12))
               for k in official if k in ours)


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
                        done = {r['impl']: r for r in run_configuration(specs, args.warmup, args.repeats, tmp)}
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
        run_worker(json.loads(args.worker), sys.stdin)
        return 0
    backbone = Config.fromfile(args.config).model.backbone
    if args.official_root and (backbone.type, backbone.get('depth', 50)) != ('IFAResNet', 50):
        raise SystemExit('--official-root compares with the official R-50: CONFIG must build IFAResNet(depth=50)')
    benchmark(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
