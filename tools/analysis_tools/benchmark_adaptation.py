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
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine import Config
from prettytable import PrettyTable

from ifa_mmseg.models.adaptation import EpisodeAdapter, episode_adaptation_settings
from ifa_mmseg.analysis.benchmark import Worker, cpu_name, run_adaptation_worker, take_turns

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
        workers = [Worker([os.path.abspath(__file__)], spec, os.path.join(tmp, f'{index}_{spec["route"]}_{batch}.log'),
                          env=dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')) for spec in specs]
        take_turns(workers, passes[batch], on_pass)
        for worker in workers:
            pending[worker.spec['route'], batch] = 0
            results.append(dict(worker.result or worker.spec, error=worker.error))
    return results


def environment() -> List[str]:
    return [f'1 thread per process (torch.set_num_threads(1), OMP_NUM_THREADS=1); torch {torch.__version__}; '
            f'CPU: {cpu_name()}, {os.cpu_count()} cores']


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
        run_adaptation_worker(json.loads(args.worker), sys.stdin)
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
