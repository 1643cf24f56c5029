"""Episodes per second of our episode loading, optionally against the official IFA loaders.

What is timed is the whole path to what the model receives. Ours: a torch ``DataLoader``
over the dataset with our configs' collate function (``--collate``, default
``fewshot_collate``), then ``FewShotSegDataPreProcessor`` on every batch (uint8 ->
normalised float, which the official loader does in its workers). Official
(``--official-root``, a checkout of the authors' code, imported from there, never copied):
the test-split loader that ``FSSDataset.initialize(img_size=400)`` makes, in the
``DataLoader`` that ``build_dataloader`` builds (no shuffling), with the same batch size
and worker count as ours (``build_dataloader`` itself forces 0 workers). Both read
the same files: our datasets use ``episode_sampling='official'`` and the official loader
runs after ``np.random.seed(seed)``, so with 0 workers the two visit the same episodes.

One pass iterates a fresh ``DataLoader`` (workers started inside the timed region) over
``--episodes`` episodes. ``--warmup`` untimed passes come first, then ``--repeats`` timed
passes of ours and the official loader alternately; a row reports the median episodes/s
and the min-max spread. Example (Deepglobe-like 408 px JPEG tiles written to a temp dir)::

    python tools/analysis_tools/benchmark_data.py --synthetic --official-root /path/to/IFA
"""
import argparse
import statistics
import sys
import tempfile
import time
import types
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from mmengine.registry import FUNCTIONS
from mmseg.registry import DATASETS, MODELS
from torch.utils.data import DataLoader, Dataset, Subset

import ifa_mmseg  # noqa: F401  (registers the datasets, transforms and the data preprocessor)
from ifa_mmseg.datasets.synthetic import write_deepglobe
from ifa_mmseg.analysis.benchmark import import_official, summary, working_dir

# our dataset kind -> (our dataset config, the official benchmark name)
KINDS = dict(deepglobe=(dict(type='DeepglobeDataset'), 'deepglobe'),
             isic=(dict(type='ISICDataset'), 'isic'),
             chestxray=(dict(type='ChestXrayDataset'), 'lung'),
             fss1000=(dict(type='FSS1000Dataset', split='val'), 'fss'))
OFFICIAL_TEST_BATCH = {1: 96, 5: 48}  # test.py --batch-size in the official README / all.sh


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Episodes per second of the few-shot episode loaders.')
    parser.add_argument('--dataset', choices=sorted(KINDS), default='deepglobe')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--data-root', help='a dataset root in the published layout')
    source.add_argument('--synthetic', action='store_true',
                        help='write Deepglobe-like JPEG tiles (Deepglobe layout) to a temp dir and use them')
    parser.add_argument('--tiles', type=int, default=240, help='--synthetic: number of tiles')
    parser.add_argument('--tile-size', type=int, default=408, help='--synthetic: tile side in pixels')
    parser.add_argument('--shots', type=int, nargs='+', default=[1, 5])
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    parser.add_argument('--episodes', type=int, default=384, help='episodes per pass')
    parser.add_argument('--batch-size', type=int,
                        help='episodes per batch (default: the official test batch, 96 at 1 shot, 48 at 5)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed passes before the timed ones')
    parser.add_argument('--repeats', type=int, default=3, help='timed passes per loader')
    parser.add_argument('--seed', type=int, default=0, help='episode seed')
    parser.add_argument('--collate', choices=['fewshot_collate', 'pseudo_collate'], default='fewshot_collate',
                        help='our collate function')
    parser.add_argument('--official-root', help='checkout of the official IFA code, to time its loaders too')
    args = parser.parse_args(argv)
    if args.synthetic and args.dataset != 'deepglobe':
        parser.error('--synthetic writes a Deepglobe layout; use --dataset deepglobe')
    return args


def our_pass(dataset: Dataset, batch_size: int, workers: int, collate: str) -> Callable[[], None]:
    """One pass of our loading path: DataLoader + ``collate`` + FewShotSegDataPreProcessor."""
    preprocessor = MODELS.build(dict(type='FewShotSegDataPreProcessor'))
    collate_fn = FUNCTIONS.get(collate)

    def run() -> None:
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_fn)
        with torch.no_grad():
            for batch in loader:
                preprocessor(batch)

    return run


def import_official_factory(official_root: str) -> type:
    """The official ``data.dataset.FSSDataset``, imported from ``official_root``.

    Its module imports the IFA adaptation loaders, which import albumentations at module
    level but use it only in their constructors; an empty stand-in is enough when it is
    not installed.
    """
    sys.modules.setdefault('albumentations', types.ModuleType('albumentations'))
    return import_official(official_root, 'data.dataset').FSSDataset


def official_pass(factory: type, official_root: str, benchmark: str, data_root: str, shot: int, episodes: int,
                  batch_size: int, workers: int, seed: int) -> Callable[[], None]:
    """One pass of the official loader (test split) over ``episodes`` episodes.

    The class-cycling loaders take the episode count (``num``); FSS-1000's length is its
    image count, of which the first ``episodes`` are used.
    """
    length = {} if benchmark == 'fss' else dict(num=episodes)
    with working_dir(official_root):  # the official loaders read data/splits/... from the CWD
        factory.initialize(img_size=400, datapath=data_root)
        dataset = factory.datasets[benchmark](factory.datapath, fold='0', transform=factory.transform,
                                              split='val', shot=shot, **length)
    if len(dataset) != episodes:
        dataset = Subset(dataset, range(episodes))

    def run() -> None:
        np.random.seed(seed)
        for _ in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers):
            pass

    return run


def timed(run: Callable[[], None], episodes: int) -> float:
    start = time.perf_counter()
    run()
    return episodes / (time.perf_counter() - start)


def benchmark(args: argparse.Namespace, data_root: str) -> List[str]:
    """Time every (shot, workers) case; return the table lines."""
    our_cfg, benchmark_name = KINDS[args.dataset]
    factory = import_official_factory(args.official_root) if args.official_root else None
    header = f'{"dataset":<10} {"shot":>4} {"workers":>7} {"batch":>5} {"ours ep/s [min-max]":>24}'
    if factory is not None:
        header += f' {"official ep/s [min-max]":>24} {"ratio":>6}'
    lines = [header]
    print(header, flush=True)
    for shot in args.shots:
        batch_size = args.batch_size or OFFICIAL_TEST_BATCH.get(shot, 48)
        dataset = DATASETS.build(dict(our_cfg, data_root=data_root, shot=shot, seed=args.seed,
                                      num_episodes=args.episodes, episode_sampling='official'))
        episodes = len(dataset)
        for workers in args.workers:
            runs = dict(ours=our_pass(dataset, batch_size, workers, args.collate))
            if factory is not None:
                runs['official'] = official_pass(factory, args.official_root, benchmark_name, data_root, shot,
                                                 episodes, batch_size, workers, args.seed)
            rates: dict = {name: [] for name in runs}
            for _ in range(args.warmup):
                for run in runs.values():
                    run()
            for _ in range(args.repeats):
                for name, run in runs.items():
                    rates[name].append(timed(run, episodes))
            line = f'{args.dataset:<10} {shot:>4} {workers:>7} {batch_size:>5} {summary(rates["ours"]):>24}'
            if factory is not None:
                ratio = statistics.median(rates['ours']) / statistics.median(rates['official'])
                line += f' {summary(rates["official"]):>24} {ratio:>6.2f}'
            lines.append(line)
            print(line, flush=True)
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not args.synthetic:
        benchmark(args, args.data_root)
        return 0
    with tempfile.TemporaryDirectory(prefix='ifa_benchmark_data_') as root:
        write_deepglobe(root, np.random.default_rng(args.seed), args.tile_size, args.tiles)
        print(f'wrote {args.tiles} Deepglobe-like {args.tile_size}x{args.tile_size} JPEG tiles under {root}')
        benchmark(args, root)
    return 0


if __name__ == '__main__':
    sys.exit(main())
