"""One multi-seed test of a config inside the calling process, for tools that compare several runs."""
import copy
import os.path as osp
import time
from dataclasses import dataclass
from typing import Any, Dict

from mmengine.config import Config

from ..utils.cli import build_runner


@dataclass
class EvaluationRun:
    """What a test run gives a comparison.

    Attributes:
        metrics: the test loop's metrics (means over the test seeds and their ``<name>_ci95``).
        seconds_per_episode: wall time of the test over the episodes it evaluated.
        protocol: the run's resolved record (``protocol.json``: facts, protocol keys, selection note).
        episodes: episodes evaluated, over every seed.
    """
    metrics: Dict[str, float]
    seconds_per_episode: float
    protocol: Dict[str, Any]
    episodes: int


def evaluate(cfg: Config, work_dir: str) -> EvaluationRun:
    """The multi-seed test of ``cfg`` (its ``load_from`` set) in ``work_dir``, with its own log and visualizer."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.experiment_name = osp.basename(work_dir)
    cfg.visualizer.pop('name', None)  # one visualizer (and log dir) per run
    runner = build_runner(cfg)
    start = time.perf_counter()
    metrics = runner.test()
    episodes = len(runner.test_dataloader.dataset) * len(runner.protocol['test_seeds'])
    return EvaluationRun(metrics, (time.perf_counter() - start) / episodes, dict(runner.protocol), episodes)
