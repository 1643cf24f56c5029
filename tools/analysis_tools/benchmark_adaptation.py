"""Cost of per-episode test-time adaptation against plain evaluation: time, FLOPs and peak memory per episode.

For each config, one 1-shot episode is evaluated by each route (recipes: ``EPISODE_RECIPES``
in ``ifa_mmseg/models/adaptation/episode_adapter.py``):

- ``plain``: ``model.test_step`` without per-episode adaptation;
- ``full (loop)`` / ``full (vmap)``: ``episode_adaptation=dict(recipe='full', engine='loop' / 'vmap')``;
- ``light``: ``episode_adaptation=dict(recipe='light', engine='loop')``.

An episode is what the config's test dataset delivers with ``adaptation_labels='episode'``:
a uint8 query and support (random pixels, a disk-shaped object) and the support's V
pseudo-queries drawn with the dataset's IFA augmentations, packed by ``PackFewShotInputs``,
collated by ``fewshot_collate`` and evaluated by ``model.test_step`` (data preprocessor,
adaptation, prediction) under ``no_grad``. The weights are the modules' own seeded random
initialisation: the cost does not depend on their values.

Every (config, route, B) runs in a fresh Python process with one thread. At B=1 the routes'
processes live together and take turns pass by pass, the order rotating every round, so a
burst of load from other jobs falls on all alike: a first pass (the warm-up) counts FLOPs,
forward and backward, under ``FlopCounterMode``, then ``--repeats`` timed passes. Peak
memory is a process's ``ru_maxrss`` after its first pass, at each of ``--batch-sizes``; at
B>1 the full routes run ``--memory-steps`` steps over the bank of pseudo-queries of all
their steps (:func:`memory_settings`).

Examples::

    python tools/analysis_tools/benchmark_adaptation.py
    python tools/analysis_tools/benchmark_adaptation.py --configs configs/demo/deepglobe.py --size 64 --steps 1 \\
        --batch-sizes 1 2
"""
import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine import Config
from mmengine.dataset import Compose
from mmengine.registry import FUNCTIONS, init_default_scope
from mmseg.registry import DATASETS, MODELS, TRANSFORMS
from prettytable import PrettyTable
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from ifa_mmseg.datasets.base_fewshot import build_transforms, pack_episode
from ifa_mmseg.datasets.pseudo_query import draw_pseudo_queries, ifa_augmentations, item_seed
from ifa_mmseg.models.adaptation import EpisodeAdapter, episode_adaptation_settings

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONFIGS = ('configs/ifa/deepglobe_1shot.py', 'configs/ifa/deepglobe_1shot_dinov2_vits14.py',
                   'configs/demo/deepglobe.py')
# route -> (its label in the table, model.test_cfg.episode_adaptation; None: plain evaluation)
ROUTES: Dict[str, Tuple[str, Optional[dict]]] = {
    'plain': ('plain', None),
    'full-loop': ('full (loop)', dict(recipe='full', engine='loop')),
    'full-vmap': ('full (vmap)', dict(recipe='full', engine='vmap')),
    'light': ('light', dict(recipe='light', engine='loop')),
}
REPLY = 'BENCHMARK_ADAPTATION_REPLY '
PROGRESS_EVERY = 20  # seconds: a progress line after a pass once this long has gone by since the last


def route_settings(route: str, steps: Optional[int]) -> Optional[dict]:
    """The route's ``episode_adaptation`` (``steps`` overriding its recipe's), or ``None`` for plain evaluation."""
    settings = ROUTES[route][1]
    return None if settings is None else dict(settings, **({} if steps is None else dict(steps=steps)))


def memory_settings(settings: Optional[dict], memory_steps: int) -> Tuple[Optional[dict], bool]:
    """The settings of a peak-memory run at B>1, and whether they cut the steps.

    A recipe with a new pseudo-query for every use (``views=None``: V = steps x queries per
    step) runs ``memory_steps`` steps with ``views`` set to the V of all its steps: every
    episode still carries and featurises the same V pseudo-queries, and every step from the
    second on holds the same activations, gradients and optimizer momentum, so the state
    that sets the peak is the whole run's. A fixed bank (``views`` set) runs all its steps.
    """
    if settings is None:
        return None, False
    adapter = EpisodeAdapter.from_settings(settings)
    if adapter.views is not None or adapter.steps <= memory_steps:
        return settings, False
    return dict(settings, steps=memory_steps, views=adapter.num_queries), True


def config_label(config: str) -> str:
    """``.../configs/ifa/deepglobe_1shot.py`` -> ``ifa/deepglobe_1shot``."""
    rel = os.path.relpath(os.path.abspath(config), os.path.join(REPO_ROOT, 'configs'))
    return os.path.splitext(os.path.basename(config) if rel.startswith('..') else rel)[0]


def config_size(config: str) -> Optional[int]:
    """The side of the config's test resize (``FewShotResize`` in its test pipeline), if it has one."""
    pipeline = Config.fromfile(config).test_dataloader.dataset.get('pipeline') or []
    scale = next((t['scale'] for t in pipeline if t.get('type') == 'FewShotResize'), None)
    return scale if scale is None or isinstance(scale, int) else max(scale)


# ----------------------------------------------------------------------------- worker side
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
    aug = DATASETS.get(cfg.test_dataloader.dataset.type).ADAPTATION
    augment = Compose(build_transforms([*ifa_augmentations(aug['flip_prob'], aug['grid_shuffle']),
                                        dict(type='FewShotResize', scale=(size, size))]))
    pack = TRANSFORMS.build(dict(type='PackFewShotInputs'))
    rng = np.random.default_rng(seed)
    items = []
    for b in range(batch):
        query, support = (random_image(rng, size, f'{name}_{b}', b, seed) for name in ('query', 'support'))
        pseudo, sources = (draw_pseudo_queries([support], augment, num_queries, item_seed(seed, b))
                           if num_queries else ((), ()))
        items.append(pack_episode(pack, query, [support], pseudo, sources))
    return items


def build(spec: dict) -> Tuple[torch.nn.Module, Callable[[], dict]]:
    """The model of ``spec['config']`` adapting with ``spec['adaptation']`` (or plain) and a maker of fresh
    collated uint8 batches."""
    cfg = Config.fromfile(spec['config'])
    test_cfg = {k: v for k, v in (cfg.model.get('test_cfg') or {}).items() if k != 'episode_adaptation'}
    if spec['adaptation']:
        test_cfg['episode_adaptation'] = spec['adaptation']
    cfg.model.test_cfg = test_cfg
    torch.manual_seed(spec['seed'])
    model = MODELS.build(cfg.model).eval()
    adapter = model.episode_adapter
    items = packed_episodes(cfg, spec['batch'], spec['size'], adapter.num_queries if adapter else 0, spec['seed'])
    collate = FUNCTIONS.get('fewshot_collate')
    return model, lambda: collate(copy.deepcopy(items))


def flop_counter() -> FlopCounterMode:
    """FlopCounterMode that also counts the CPU kernels of scaled_dot_product_attention (DINOv2's), which its
    registry lacks."""
    aten = torch.ops.aten
    return FlopCounterMode(display=False, custom_mapping={
        aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v),
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda grad, q, k, v, *args, out_shape=None, **kwargs: sdpa_backward_flop_count(grad, q, k, v),
    })


def say(payload: Any) -> None:
    print(REPLY + json.dumps(payload), flush=True)


def serve(spec: dict) -> None:
    """The worker: build, answer ``ready``, then one pass per command until ``finish`` (answered with the
    measurements). ``first``: the first pass (FLOPs counted when ``spec['flops']``), after which the peak
    memory is read; ``time``: a timed pass."""
    torch.set_num_threads(1)
    init_default_scope('mmseg')
    model, make_batch = build(spec)
    batch = make_batch()  # the next pass's input, made before its clock starts
    result = dict(spec, times=[], rss_before=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    say('ready')
    for command in sys.stdin:
        command = command.strip()
        if command == 'finish':
            say(result)
            return
        counter = flop_counter() if command == 'first' and spec['flops'] else None
        start = time.perf_counter()
        with torch.no_grad(), counter or nullcontext():
            model.test_step(batch)
        seconds = time.perf_counter() - start
        if command == 'first':
            result.update(first_time=seconds, peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                          flops=counter.get_total_flops() if counter else None)
        else:
            result['times'].append(seconds)
        batch = make_batch()
        say(seconds)


# ----------------------------------------------------------------------------- parent side
class WorkerError(RuntimeError):
    """A worker process ended without answering."""


class Worker:
    """One (config, route, B) served by a fresh interpreter (:func:`serve`), driven command by command."""

    def __init__(self, spec: dict, log: str) -> None:
        self.spec, self.log = spec, log
        self.seconds: List[float] = []
        self.result: Optional[dict] = None
        self.error: Optional[str] = None
        with open(log, 'w') as f:
            self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), '--worker', json.dumps(spec)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=f, text=True,
                                         env=dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'))

    def answer(self) -> Any:
        for line in self.proc.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY):])
        self.proc.wait()
        with open(self.log) as f:
            tail = f.read().strip().splitlines()[-1:]
        killed = ' (killed: out of memory?)' if self.proc.returncode == -9 else ''
        raise WorkerError(f'exit status {self.proc.returncode}{killed}' + ''.join(f': {line}' for line in tail))

    def send(self, command: str) -> Any:
        try:
            self.proc.stdin.write(command + '\n')
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it has ended: answer() says why
        return self.answer()


def run_group(workers: List[Worker], passes: Sequence[str], on_pass: Callable[[Worker], None]) -> None:
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
                worker.result = worker.send('finish')
                worker.proc.wait()
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
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()


def duration(seconds: float) -> str:
    if seconds < 90:
        return f'{seconds:.0f} s'
    return f'{seconds / 60:.0f} min' if seconds < 5400 else f'{seconds / 3600:.1f} h'


def measure_config(args: argparse.Namespace, index: int, tmp: str, progress: Callable[[str], None]) -> List[dict]:
    """Every (route, B) of config ``index``: its workers' results (``error`` set where one failed)."""
    config, size = args.configs[index], args.size[index]
    timed = {route: route_settings(route, args.steps) for route in args.routes}
    passes = {b: ['first'] + ['time'] * args.repeats if b == 1 else ['first'] for b in args.batch_sizes}
    pending, cost, last = {}, {}, {}  # (route, B) -> passes to go, cost of a pass / a B=1 pass; route -> seconds
    groups = []
    for batch in args.batch_sizes:
        specs = []
        for route in args.routes:
            settings, cut = memory_settings(timed[route], args.memory_steps) if batch > 1 else (timed[route], False)
            spec = dict(config=config, route=route, batch=batch, size=size, seed=args.seed, adaptation=settings,
                        steps_cut=cut, flops=batch == 1)
            specs.append(spec)
            pending[route, batch] = len(passes[batch])
            cost[route, batch] = batch * (args.memory_steps / EpisodeAdapter.from_settings(timed[route]).steps
                                          if cut else 1)
        groups.append((batch, specs))
    to_go = len(args.configs) - index - 1
    more = f' (this config; {to_go} more to go)' if to_go else ''

    def left() -> float:
        """Seconds to go in this config, from the latest B=1 pass of each route (the others': their mean)."""
        guess = statistics.mean(last.values()) if last else 0.0
        return sum(n * last.get(route, guess) * cost[route, b] for (route, b), n in pending.items())

    def on_pass(worker: Worker) -> None:
        route, batch = worker.spec['route'], worker.spec['batch']
        pending[route, batch] -= 1
        if batch == 1:
            last[route] = worker.seconds[-1]
        progress(f'config {index + 1}/{len(args.configs)} route {ROUTES[route][0]} B={batch}: done in '
                 f'{duration(worker.seconds[-1])}, about {duration(left())} left{more}')

    results = []
    for batch, specs in groups:
        workers = [Worker(spec, os.path.join(tmp, f'{index}_{spec["route"]}_{batch}.log')) for spec in specs]
        run_group(workers, passes[batch], on_pass)
        for worker in workers:
            pending[worker.spec['route'], batch] = 0
            results.append(dict(worker.result or worker.spec, error=worker.error))
    return results


def environment() -> List[str]:
    cpu = platform.processor() or platform.machine()
    with open('/proc/cpuinfo') as f:
        cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu)
    return [f'1 thread per process (torch.set_num_threads(1), OMP_NUM_THREADS=1); torch {torch.__version__}; '
            f'CPU: {cpu}, {os.cpu_count()} cores']


def time_cell(seconds: float) -> str:
    if seconds < 1:
        return f'{seconds * 1e3:.3g} ms'
    return f'{seconds:.3g} s' if seconds < 100 else f'{seconds:.0f} s'


def steps_cell(settings: Optional[dict], overridden: bool) -> str:
    """``steps x queries per step, V`` of an adapted route; ``-`` for plain."""
    if settings is None:
        return '-'
    adapter = EpisodeAdapter.from_settings(settings)
    return (f'{adapter.steps} x {adapter.queries_per_step}, V={adapter.num_queries}'
            + (' (--steps)' if overridden else ''))


def recipe_text(route: str, steps: Optional[int]) -> str:
    s = episode_adaptation_settings(route_settings(route, steps))
    return (f"steps={s['steps']}, queries_per_step={s['queries_per_step']}, views={s['views']}, "
            f"params={s['params']!r}, {s['optimizer']['type']} lr={s['optimizer']['lr']}")


def report(args: argparse.Namespace, results: List[dict]) -> Tuple[PrettyTable, List[str]]:
    """The table (a row per config and route) and its footnote."""
    table = PrettyTable(['config', 'px', 'route', 'steps x P, V', 'time / episode', 'time x plain',
                         'GFLOP / episode', 'FLOPs x plain', *(f'peak B={b}' for b in args.batch_sizes)])
    table.align = 'r'
    table.align['config'] = table.align['route'] = 'l'
    by_key = {(r['config'], r['route'], r['batch']): r for r in results}
    cut = []
    for config, size in zip(args.configs, args.size):
        plain = by_key.get((config, 'plain', 1))
        plain = None if plain is None or plain['error'] else plain
        for route in args.routes:
            r = by_key[config, route, 1]
            cells = ['failed', '-', '-', '-']
            if not r['error']:
                t = statistics.median(r['times'])
                cells = [time_cell(t), f'{t / statistics.median(plain["times"]):.3g}' if plain else '-',
                         f'{r["flops"] / 1e9:.3g}', f'{r["flops"] / plain["flops"]:.3g}' if plain else '-']
            peaks = []
            for b in args.batch_sizes:
                m = by_key[config, route, b]
                peaks.append('failed' if m['error'] else f'{m["peak_rss"] / 2 ** 30:.2f} GiB' + '*' * m['steps_cut'])
                if m['steps_cut']:
                    cut.append(f'{config_label(config)} {ROUTES[route][0]} B={b}: {m["adaptation"]["steps"]} of '
                               f'{EpisodeAdapter.from_settings(r["adaptation"]).steps} steps, '
                               f'views={m["adaptation"]["views"]}')
            table.add_row([config_label(config), size, ROUTES[route][0],
                           steps_cell(r['adaptation'], args.steps is not None), *cells, *peaks])
    notes = [
        f'time: median of {args.repeats} timed pass(es) at B=1 (one episode per batch) after a first pass that warms '
        'up and counts FLOPs; the routes of a config run in fresh processes alive together, taking turns pass by pass; '
        'time x plain: against plain in this invocation',
        'a pass: model.test_step (data preprocessor, per-episode adaptation, prediction) under no_grad on a uint8 '
        '1-shot episode packed as the test dataset packs it (V pseudo-queries drawn by its IFA augmentations); '
        'random seeded weights',
        'FLOPs: FlopCounterMode over one whole pass: convolutions, matrix products and attention, forward and '
        'backward (adaptation)',
        'peak: ru_maxrss of a fresh process after its first pass (interpreter, model, uint8 batch and the pass)',
        "routes: plain = no per-episode adaptation; full (loop) = recipe 'full' "
        f"({recipe_text('full-loop', args.steps)}), episodes one by one, ordinary kernels, the frozen prefix computed "
        'once; full (vmap) = the same recipe, the episodes of a batch at once under torch.func.vmap (on CPU, '
        'convolutions without oneDNN); '
        f"light = recipe 'light' ({recipe_text('light', args.steps)}), engine loop",
    ]
    if args.steps is not None:
        notes.append(f'--steps {args.steps}: both adapted recipes ran {args.steps} steps instead of theirs')
    notes += [f'failed: {config_label(r["config"])} {ROUTES[r["route"]][0]} B={r["batch"]}: {r["error"]}'
              for r in results if r['error']]
    if cut:
        notes.append('* peak of a run with fewer steps over the same bank of pseudo-queries (the state that sets the '
                     'peak is the same; no time is reported at B>1): ' + '; '.join(cut))
    return table, notes + environment()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Per-episode cost of test-time adaptation against plain evaluation: '
                                     'time, FLOPs and peak memory per route.')
    parser.add_argument('--configs', nargs='+', default=[os.path.join(REPO_ROOT, c) for c in DEFAULT_CONFIGS],
                        help='default: the Deepglobe 1-shot R-50, DINOv2 ViT-S/14 and demo ResNet-18 configs')
    parser.add_argument('--size', type=int, nargs='+',
                        help="image side, one for every config or one per config (default: each config's test "
                             'resize: 400 R-50, 392 DINOv2, 96 demo)')
    parser.add_argument('--routes', nargs='+', choices=list(ROUTES), default=list(ROUTES))
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 12],
                        help='episodes per batch whose peak memory is measured; B=1 is also timed')
    parser.add_argument('--repeats', type=int, default=1, help='timed passes per route at B=1')
    parser.add_argument('--steps', type=int, help='optimizer steps of both adapted recipes (default: theirs)')
    parser.add_argument('--memory-steps', type=int, default=2,
                        help='steps of the full routes in the peak-memory runs at B>1, over the bank of V '
                             "pseudo-queries of all their steps (from the second step on, the optimizer's momentum "
                             "lives beside a step's activations)")
    parser.add_argument('--seed', type=int, default=0, help='weights and episodes')
    parser.add_argument('--json', help='also write every measurement to this file')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    args.configs = [os.path.abspath(c) for c in args.configs]
    args.routes = list(dict.fromkeys(args.routes))
    args.batch_sizes = sorted(set(args.batch_sizes))
    if args.batch_sizes[0] != 1:
        parser.error('--batch-sizes must include 1, the timed batch, and no size below it')
    if args.repeats < 1 or (args.steps is not None and args.steps < 1) or args.memory_steps < 1:
        parser.error('--repeats, --steps and --memory-steps must be at least 1')
    if args.size is None:
        args.size = [config_size(c) for c in args.configs]
        if None in args.size:
            parser.error('a config has no FewShotResize in its test pipeline: give --size')
    elif len(args.size) not in (1, len(args.configs)):
        parser.error('--size takes one side, or one per config')
    args.size = args.size * len(args.configs) if len(args.size) == 1 else args.size
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.worker:
        serve(json.loads(args.worker))
        return 0
    last_line = time.monotonic()

    def progress(line: str) -> None:
        nonlocal last_line
        if time.monotonic() - last_line >= PROGRESS_EVERY:
            last_line = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    load = ' '.join(f'{v:.2f}' for v in os.getloadavg())
    results: List[dict] = []
    with tempfile.TemporaryDirectory(prefix='ifa_benchmark_adaptation_') as tmp:
        for index in range(len(args.configs)):
            results += measure_config(args, index, tmp, progress)
    table, notes = report(args, results)
    notes.append(f'load average at the start {load}, at the end {" ".join(f"{v:.2f}" for v in os.getloadavg())}')
    if args.json:  # first: the measurements outlive a closed stdout
        with open(args.json, 'w') as f:
            json.dump(dict(notes=notes, table=table.get_string(), results=results), f, indent=1)
    print(table.get_string())
    for note in notes:
        print(note)
    return 0


if __name__ == '__main__':
    sys.exit(main())
