"""``tools/test.py --out``: the predicted masks of every episode of every seed, compactly."""
import os
import os.path as osp
import pickle
from typing import Dict, List, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

EPISODE_KEYS = ('episode', 'class_id', 'img_path', 'seg_map_path', 'support_paths')


def unpack_mask(entry: dict) -> np.ndarray:
    """The uint8 {0, 1} [H, W] prediction of one dumped episode."""
    h, w = entry['shape']
    return np.unpackbits(entry['pred'], count=h * w).reshape(h, w)


@METRICS.register_module()
class FewShotDumpResults(BaseMetric):
    """Write ``{seed: [episode, ...]}`` to ``out_file_path`` after every evaluated seed.

    Each episode is ``episode``, ``class_id``, the query and support paths, ``shape``
    (h, w) and ``pred``, the predicted foreground mask bit-packed (:func:`unpack_mask`):
    about 20 kB per 400x400 episode, where pickling whole data samples (with support
    images and logits) took about 57 MB. The file is rewritten after each seed, holding
    every seed so far. The seed is the episode metainfo ``episode_seed``.

    Args:
        out_file_path: a ``.pkl`` path.
    """

    def __init__(self, out_file_path: str, collect_device: str = 'cpu') -> None:
        super().__init__(collect_device=collect_device)
        if not out_file_path.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {out_file_path}')
        self.out_file_path = out_file_path
        self.seeds: Dict[int, List[dict]] = {}

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'][0].cpu().numpy().astype(np.uint8)
            entry = {k: sample[k] for k in EPISODE_KEYS if k in sample}
            entry.update(seed=sample.get('episode_seed'), shape=pred.shape, pred=np.packbits(pred))
            self.results.append(entry)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        for entry in sorted(results, key=lambda e: e['episode']):
            self.seeds.setdefault(entry.pop('seed'), []).append(entry)
        os.makedirs(osp.dirname(osp.abspath(self.out_file_path)), exist_ok=True)
        with open(self.out_file_path, 'wb') as f:
            pickle.dump(self.seeds, f)
        return {}
