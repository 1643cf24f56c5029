"""A test-only metric: every episode's logits, by (seed, episode), gathered over processes into a pickle."""
import pickle
from typing import Dict, List, Sequence

from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class EpisodeLogitsDump(BaseMetric):
    """Writes ``{(seed, episode): float32 [2, H, W] logits}`` to ``out_file`` after each seed (all seeds so far)."""

    def __init__(self, out_file: str, collect_device: str = 'cpu') -> None:
        super().__init__(collect_device=collect_device)
        self.out_file = out_file
        self.logits: Dict[tuple, object] = {}

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(((sample['episode_seed'], sample['episode']), sample['seg_logits']['data'].cpu()))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        self.logits.update(results)
        with open(self.out_file, 'wb') as f:
            pickle.dump(self.logits, f)
        return {}
