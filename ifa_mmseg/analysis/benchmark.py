"""What the benchmark scripts of ``tools/analysis_tools/`` share, so that each script stays a small command line.

As ``mmdet/utils/benchmark.py`` serves mmdet's ``tools/analysis_tools/benchmark.py``:

- the worker protocol: every measured configuration runs in a fresh interpreter (the script
  itself, run with ``--worker SPEC``), so that its peak memory is its own; the parent drives
  the workers line by line (:class:`Worker`, :func:`reply`) and lets them take turns pass by
  pass (:func:`take_turns`), so a burst of load from other jobs falls on all alike;
- the per-step benchmark of the model (``benchmark.py``, ``gpu_check.py``, ``get_flops.py``):
  flat benchmark episodes, our model and the official one on them, one step, its FLOPs
  (:func:`run_step_worker`, :func:`episode_flops`);
- the per-episode adaptation benchmark (``benchmark_adaptation.py``): packed uint8 episodes and
  ``model.test_step`` on them (:func:`run_adaptation_worker`);
- timing, FLOP counting and report helpers.
"""
import contextlib
import copy
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import FUNCTIONS, init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS, TRANSFORMS
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from ifa_mmseg.datasets.base_fewshot import build_transforms, episode_pipeline, pack_episode
from ifa_mmseg.datasets.pseudo_query import draw_pseudo_queries, item_seed, recipe_of, split_at_mask_loading
from ifa_mmseg.engine.protocol import evaluated_dataset, resolve_config
from ifa_mmseg.models.heads.ifa_head import IFA_LOSS_WEIGHTS
from ifa_mmseg.models import convert_official
from ifa_mmseg.structures import FewShotDataSample, FewShotSampleList
from ..utils.official_recipe import imagenet_state_dict, make_episodes

MODES = ('eval', 'source', 'ifa')
OUTPUT_KEYS = tuple(IFA_LOSS_WEIGHTS)  # the official training outputs, in order
# official train.py (source: the first 5 terms) and ifa.py (adaptation) losses, refine branch
LOSS_WEIGHTS = dict(source={k: IFA_LOSS_WEIGHTS[k] for k in OUTPUT_KEYS[:5]}, ifa=IFA_LOSS_WEIGHTS)
REPLY_TAG = 'BENCHMARK_REPLY '


# ----------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def working_dir(path: str) -> Iterator[None]:
    """Run the body with ``path`` as the current directory (the official code reads relative paths)."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def import_official(official_root: str, module: str) -> types.ModuleType:
    """Import ``module`` from a checkout of the official IFA code (never copied here)."""
    sys.path.insert(0, os.path.abspath(official_root))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.pop(0)


def summary(values: Sequence[float], digits: int = 1, width: int = 8) -> str:
    """``median [min-max]`` of ``values``: the spread says how far the median can be trusted."""
    return f'{statistics.median(values):{width}.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]'


def cpu_name() -> str:
    """The CPU model for a report's environment line (``/proc/cpuinfo``, else the platform's name)."""
    with open('/proc/cpuinfo') as f:
        return next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')),
                    platform.processor() or platform.machine())


def sync_fn(device: str) -> Callable[[], None]:
    """What makes a wall-clock reading on ``device`` include the queued kernels."""
    return torch.cuda.synchronize if device == 'cuda' else (lambda: None)


def rel_diff(ours: Dict[str, Tensor], official: Dict[str, Tensor]) -> float:
    """Largest relative difference over the common outputs (logits in eval, loss terms in training)."""
    return max(float((ours[k] - official[k]).norm() / official[k].norm().clamp_min(1e-12))
               for k in official if k in ours)


def flop_counter() -> FlopCounterMode:
    """FlopCounterMode that also counts the CPU kernels of scaled_dot_product_attention (the head's and
    DINOv2's), which its registry lacks."""
    aten = torch.ops.aten
    return FlopCounterMode(display=False, custom_mapping={
        aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v),
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda grad, q, k, v, *args, out_shape=None, **kwargs: sdpa_backward_flop_count(grad, q, k, v),
    })


# ----------------------------------------------------------------------------- worker protocol
def reply(payload: object) -> None:
    """A worker's answer to its parent: one tagged JSON line (other output on stdout is ignored)."""
    print(REPLY_TAG + json.dumps(payload), flush=True)


class WorkerError(RuntimeError):
    """A worker process ended without answering; ``log_tail`` is the end of its standard error."""

    def __init__(self, message: str, log_tail: str = '') -> None:
        super().__init__(message)
        self.log_tail = log_tail


class Worker:
    """One configuration served by a fresh interpreter (``SCRIPT_ARGS --worker SPEC``), driven command by command.

    ``seconds``, ``result`` and ``error`` record what :func:`take_turns` got from it.
    """

    def __init__(self, script_args: Sequence[str], spec: dict, log: str, env: Optional[Dict[str, str]] = None,
                 cwd: Optional[str] = None) -> None:
        self.spec, self.log = spec, log
        self.seconds: List[float] = []
        self.result: Optional[dict] = None
        self.error: Optional[str] = None
        with open(log, 'w') as f:
            self.proc = subprocess.Popen([sys.executable, *script_args, '--worker', json.dumps(spec)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=f, text=True,
                                         env=env, cwd=cwd)

    def answer(self) -> Any:
        """The next :func:`reply`; a :class:`WorkerError` with the exit status and the log's end if it ended."""
        for line in self.proc.stdout:
            if line.startswith(REPLY_TAG):
                return json.loads(line[len(REPLY_TAG):])
        self.proc.wait()
        with open(self.log) as f:
            log = f.read()
        killed = ' (killed: out of memory?)' if self.proc.returncode == -9 else ''
        raise WorkerError(f'exit status {self.proc.returncode}{killed}'
                          + ''.join(f': {line}' for line in log.strip().splitlines()[-1:]), log[-3000:])

    def send(self, command: str) -> Any:
        """``command``'s answer; a worker that has ended raises :class:`WorkerError` (from :meth:`answer`)."""
        try:
            self.proc.stdin.write(command + '\n')
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it has ended: answer() says why
        return self.answer()

    def finish(self) -> dict:
        """Its measurements; the process has ended (its memory is free for the next)."""
        result = self.send('finish')
        self.proc.wait()
        return result

    def stop(self) -> None:
        """End the process if it still waits for a command."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def take_turns(workers: List[Worker], passes: Sequence[str], on_pass: Callable[[Worker], None]) -> None:
    """Every worker runs ``passes``, all taking turns pass by pass, the order rotating every round; each ends
    right after its last pass (its memory freed for the next), and one that fails is dropped."""

    def attempt(worker: Worker, command: Optional[str]) -> None:
        try:
            if command is None:
                worker.answer()  # 'ready'
                return
            worker.seconds.append(worker.send(command))
            on_pass(worker)
            if len(worker.seconds) == len(passes):
                worker.result = worker.finish()
        except WorkerError as e:
            worker.error = str(e)

    try:
        for worker in workers:
            attempt(worker, None)
        for i, command in enumerate(passes):
            alive = [w for w in workers if w.error is None]
            for worker in alive[i % len(alive):] + alive[:i % len(alive)] if alive else ():
                attempt(worker, command)
    finally:
        for worker in workers:
            worker.stop()


# ----------------------------------------------------------------------------- one step of the model
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
    cfg = resolve_config(spec['config'], spec.get('cfg_options')).model
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
        sample = FewShotDataSample(metainfo=dict(img_shape=(spec['size'], ) * 2, ori_shape=(spec['size'], ) * 2))
        sample.gt_sem_seg = PixelData(data=ep['query_mask'][b][None])
        samples.append(sample)
    samples = FewShotSampleList(samples, support_imgs=ep['supports'], support_masks=ep['support_masks'])

    def forward() -> Dict[str, Tensor]:
        if spec['mode'] == 'eval':
            return model(ep['query'], samples, mode='tensor')
        return model(ep['query'], samples, mode='loss')

    return model, ('backbone', ), forward


def build_official(spec: dict) -> Tuple[nn.Module, Tuple[str, ...], Callable]:
    """The official model with the recipe weights (via its own loader), frozen as train.py does."""
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
    """``fn()`` under :func:`flop_counter`: (its result, FLOPs of matrix products, convolutions, attention)."""
    with flop_counter() as counter:
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
    """The process's resident memory now, in bytes: the baseline a step's peak is measured above."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss() -> int:
    """The process's peak resident memory so far, in bytes (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_step_worker(spec: dict, commands: Iterable[str]) -> dict:
    """Serve one (implementation, device, precision, mode, B, K) and return its measurements.

    ``commands`` (one per line from the parent): ``flops`` (the first untimed pass,
    counting FLOPs), ``warmup``, ``step`` (a timed pass), then ``finish`` (peak memory,
    profile, GEMM rate). Each is answered with a tagged line. The outputs of the second
    pass are saved for comparison: under ``FlopCounterMode`` a compiled module runs eagerly.
    """
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
            result['peak_rss'] = peak_rss()
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


# ----------------------------------------------------------------------------- one episode with adaptation
def random_image(rng: np.random.Generator, size: int, name: str, episode: int, seed: int) -> dict:
    """A loaded, resized pipeline result: a uint8 image whose object is a disk.

    Object and background have distinct colours (with noise), so that the head's
    self-support prototypes find regions to select, as on real images.
    """
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < (rng.uniform(0.15, 0.3) * size) ** 2).astype(np.uint8)
    img = rng.integers(40, 216, (2, 3))[mask] + rng.integers(-40, 41, (size, size, 3))
    return dict(img=img.clip(0, 255).astype(np.uint8), gt_seg_map=mask, img_path=f'{name}.jpg',
                seg_map_path=f'{name}.png', img_shape=(size, size), ori_shape=(size, size), seg_fields=['gt_seg_map'],
                episode=episode, episode_seed=seed)


def packed_episodes(cfg: Config, batch: int, size: int, num_queries: int, seed: int) -> List[dict]:
    """``batch`` 1-shot episodes packed as the config's test dataset packs them, with ``num_queries``
    pseudo-queries each (drawn by its IFA augmentations, then resized like its images)."""
    _, _, pseudo_query = split_at_mask_loading(episode_pipeline(scale=(size, size)), recipe_of(evaluated_dataset(cfg)))
    augment = Compose(build_transforms(pseudo_query))
    pack = TRANSFORMS.build(dict(type='PackFewShotInputs'))
    rng = np.random.default_rng(seed)
    items = []
    for b in range(batch):
        query, support = (random_image(rng, size, f'{name}_{b}', b, seed) for name in ('query', 'support'))
        pseudo, sources = (draw_pseudo_queries([support], augment, num_queries, item_seed(seed, b))
                           if num_queries else ((), ()))
        items.append(pack_episode(pack, query, [support], pseudo, sources))
    return items


def build_adapting_model(spec: dict) -> Tuple[nn.Module, Callable[[], dict]]:
    """The model of ``spec['config']`` adapting with ``spec['adaptation']`` (or plain) and a maker of fresh
    collated uint8 batches."""
    adapting = dict(adaptation_labels='episode', episode_adaptation=spec['adaptation'])
    cfg = resolve_config(spec['config'], adapting if spec['adaptation'] else dict(adaptation_labels='none'))
    torch.manual_seed(spec['seed'])
    model = MODELS.build(cfg.model).eval()
    adapter = model.episode_adapter
    items = packed_episodes(cfg, spec['batch'], spec['size'], adapter.num_queries if adapter else 0, spec['seed'])
    collate = FUNCTIONS.get('fewshot_collate')
    return model, lambda: collate(copy.deepcopy(items))


def run_adaptation_worker(spec: dict, commands: Iterable[str]) -> None:
    """Build, answer ``ready``, then one pass of ``model.test_step`` per command until ``finish`` (answered with
    the measurements). ``first``: the first pass (FLOPs counted when ``spec['flops']``), after which the peak
    memory is read; ``time``: a timed pass."""
    torch.set_num_threads(1)
    init_default_scope('mmseg')
    model, make_batch = build_adapting_model(spec)
    batch = make_batch()  # the next pass's input, made before its clock starts
    result = dict(spec, times=[], rss_before=peak_rss())
    reply('ready')
    for command in commands:
        command = command.strip()
        if command == 'finish':
            reply(result)
            return
        counter = flop_counter() if command == 'first' and spec['flops'] else None
        start = time.perf_counter()
        with torch.no_grad(), counter or contextlib.nullcontext():
            model.test_step(batch)
        seconds = time.perf_counter() - start
        if command == 'first':
            result.update(first_time=seconds, peak_rss=peak_rss(), flops=counter.get_total_flops() if counter else None)
        else:
            result['times'].append(seconds)
        batch = make_batch()
        reply(seconds)
