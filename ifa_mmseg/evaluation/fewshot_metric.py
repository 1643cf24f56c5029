"""Few-shot segmentation IoU under the standard and the official IFA protocols."""
import logging
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS, TRANSFORMS
from prettytable import PrettyTable

from ..utils.errors import NonFiniteError


def _pixel_sums(pred: torch.Tensor, gt: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """int64 [4] on ``pred``'s device: true positives, predicted, labelled and valid pixels."""
    valid = gt != ignore_index
    p, g = (pred == 1) & valid, (gt == 1) & valid
    return torch.stack([(p & g).sum(), p.sum(), g.sum(), valid.sum()])


def _tp_fp_fn_tn(sums: Sequence[int]) -> np.ndarray:
    tp, predicted, labelled, valid = sums
    return np.array([tp, predicted - tp, labelled - tp, valid - predicted - labelled + tp], dtype=np.int64)


def episode_counts(pred: torch.Tensor, gt: torch.Tensor, ignore_index: int = 255) -> np.ndarray:
    """Pixel counts (TP, FP, FN, TN) of a binary prediction against a binary mask."""
    return _tp_fp_fn_tn(_pixel_sums(pred, gt, ignore_index).tolist())


def standard_iou(class_ids: np.ndarray, counts: np.ndarray) -> Dict[str, object]:
    """HSNet/PATNet metric: class-wise foreground IoU and FB-IoU.

    Args:
        class_ids: [E] class of each episode.
        counts: [E, 4] (TP, FP, FN, TN) per episode.

    Returns:
        ``per_class`` {class: fg IoU}, ``mIoU`` (their mean) and ``FBIoU`` (mean of the
        background and foreground IoU pooled over all classes); unions clamp at 1.
    """
    tp, fp, fn, tn = counts.T
    classes = np.unique(class_ids)
    inter = np.zeros((2, len(classes)))
    union = np.zeros((2, len(classes)))
    for i, c in enumerate(classes):
        sel = class_ids == c
        inter[:, i] = tn[sel].sum(), tp[sel].sum()
        union[:, i] = (tn + fp + fn)[sel].sum(), (tp + fp + fn)[sel].sum()
    fg_iou = inter[1] / np.maximum(union[1], 1)
    return dict(per_class=dict(zip(classes.tolist(), fg_iou.tolist())), mIoU=float(fg_iou.mean()),
                FBIoU=float((inter.sum(1) / np.maximum(union.sum(1), 1)).mean()))


# with more classes than this, logs show a summary (mean, worst and best 5) instead of every class
FULL_TABLE_MAX_CLASSES = 20


def per_class_text(values: Dict[str, float], title: str, k: int = 5) -> str:
    """A log text of per-class IoUs (``{class name: IoU in %}``).

    Up to :data:`FULL_TABLE_MAX_CLASSES` classes: a table of every class. More: their
    mean and the ``k`` worst and ``k`` best classes by name.
    """
    if len(values) <= FULL_TABLE_MAX_CLASSES:
        table = PrettyTable(['class', 'fg IoU'])
        for name, v in values.items():
            table.add_row([name, f'{v:.2f}'])
        return f'{title}:\n{table.get_string()}'
    ranked = sorted(values.items(), key=lambda item: item[1])
    table = PrettyTable(['', 'class', 'fg IoU'])
    for i, (name, v) in enumerate(ranked[:k]):
        table.add_row([f'worst {i + 1}', name, f'{v:.2f}'])
    for i, (name, v) in enumerate(ranked[::-1][:k]):
        table.add_row([f'best {i + 1}', name, f'{v:.2f}'])
    mean = float(np.mean(list(values.values())))
    return f'{title}: {len(values)} classes, mean fg IoU {mean:.2f}; worst and best {k}:\n{table.get_string()}'


def official_iou(episodes: np.ndarray, class_ids: np.ndarray, counts: np.ndarray, batch_size: int,
                 num_classes: int) -> float:
    """The official IFA ``mIOU`` as ``test.py`` drives it (``util/utils.py`` ``mIOU``, fed per batch).

    Every episode of an evaluation batch is labelled with the class of the batch's
    first episode (batches are consecutive episode indices of ``batch_size``); the
    foreground pixels become label ``cls = class + 1``, a confusion matrix over labels
    ``0..num_classes-1`` is accumulated (a ground-truth label ``>= num_classes`` is
    dropped, and a prediction equal to ``num_classes`` on background lands in cell
    [1, 0] through the flat index), and the NaN-mean over all rows, background
    included, is returned. With ``num_classes == 1`` it is the pooled foreground IoU.

    Args:
        episodes: [E] episode indices; every batch's first episode must be present.
        class_ids: [E] class of each episode, in the official numbering.
        counts: [E, 4] (TP, FP, FN, TN) per episode.
        batch_size: the official evaluation batch size (96 for 1-shot, 48 for 5-shot).
        num_classes: the official metric's class count (6, 3, 1, 1000).
    """
    tp, fp, fn, tn = counts.T
    if num_classes == 1:
        union = (tp + fp + fn).sum()
        return float(tp.sum() / union) if union > 0 else 0.0
    class_of = dict(zip(episodes.tolist(), class_ids.tolist()))
    first = (episodes // batch_size) * batch_size
    missing = sorted(set(first.tolist()) - set(class_of))
    if missing:
        raise ValueError(f'official metric: first episodes {missing[:5]} of their batches were not evaluated')
    cls = np.array([class_of[f] for f in first.tolist()]) + 1
    hist = np.zeros(num_classes * num_classes)
    np.add.at(hist, 0, tn.sum())
    np.add.at(hist, cls, fp)                   # (gt 0, pred cls); cls == n wraps to [1, 0]
    kept = cls < num_classes                    # gt == cls is dropped when cls == n
    np.add.at(hist, num_classes * cls[kept], fn[kept])
    np.add.at(hist, (num_classes + 1) * cls[kept], tp[kept])
    hist = hist.reshape(num_classes, num_classes)
    with np.errstate(divide='ignore', invalid='ignore'):
        iu = np.diag(hist) / (hist.sum(0) + hist.sum(1) - np.diag(hist))
    return float(np.nanmean(iu))


@METRICS.register_module()
class FewShotIoUMetric(BaseMetric):
    """IoU of few-shot episodes, under both protocols in one evaluation.

    ``standard``: per-class foreground IoU accumulated over each class's episodes, its
    mean ``mIoU`` and ``FBIoU`` (HSNet/PATNet); independent of batching and world size.
    ``official``: ``official.mIoU``, a replica of the official IFA metric; the batch
    relabelling is rebuilt from episode indices and ``official_batch_size``, so it does
    not depend on how this run is batched either.

    Each data sample needs ``pred_sem_seg``, ``gt_sem_seg`` and metainfo ``episode``
    and ``class_id``. Values are percentages. Class facts come from the evaluated
    dataset's metainfo (``dataset_meta``, set by the loop as for mmseg's ``IoUMetric``):
    ``classes`` names the per-class table, ``official_num_classes`` sizes the official
    metric and ``official_class_offset`` (default 0; FSS-1000: 520 for val, 760 for
    test) maps ``class_id`` to the official numbering.

    ``resolution='model'`` scores at the model's input size (400x400), as the official
    code. ``'original'`` scores every query at its own size: the mask is read again from
    ``seg_map_path`` with ``gt_loader`` and the logits are resized bilinearly to it
    (unless the model already did, ``test_cfg.resize_to_original``).

    Args:
        protocols: any of ``'standard'``, ``'official'``.
        official_batch_size: the official test batch size (96 for 1-shot, 48 for 5-shot;
            derived from ``shot`` by the config resolver).
        ignore_index: label excluded from all counts.
        resolution: ``'model'`` or ``'original'``.
        gt_loader: mask transform for ``'original'`` (the pipeline's ``LoadBinaryMask``).
        align_corners: of the bilinear resize for ``'original'`` (the head's setting).
        nonfinite: an episode whose logits hold NaN or inf stops the evaluation, naming it
            (``'error'``), or is counted and the count reported beside the metrics as
            ``nonfinite_episodes`` (``'report'``). Checked in the transfer that brings the
            pixel counts to the host: no extra synchronisation.
    """

    def __init__(self,
                 protocols: Sequence[str] = ('standard', 'official'),
                 official_batch_size: Optional[int] = None,
                 ignore_index: int = 255,
                 resolution: str = 'model',
                 gt_loader: dict = dict(type='LoadBinaryMask', mode='threshold'),
                 align_corners: bool = True,
                 nonfinite: str = 'error',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        unknown = set(protocols) - {'standard', 'official'}
        if unknown:
            raise ValueError(f'unknown protocols {sorted(unknown)}; use standard and/or official')
        if 'official' in protocols and official_batch_size is None:
            raise ValueError('the official protocol needs official_batch_size (FewShotRunner derives it from shot: '
                             "build the runner from a config with runner_type='FewShotRunner')")
        if resolution not in ('model', 'original'):
            raise ValueError(f"resolution must be 'model' or 'original', got {resolution!r}")
        if nonfinite not in ('error', 'report'):
            raise ValueError(f"nonfinite must be 'error' or 'report', got {nonfinite!r}")
        self.nonfinite = nonfinite
        self.protocols = tuple(protocols)
        self.resolution = resolution
        self.gt_loader = TRANSFORMS.build(gt_loader) if resolution == 'original' else None
        self.align_corners = align_corners
        self.official_batch_size = official_batch_size
        self.ignore_index = ignore_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            logits = sample.get('seg_logits', {}).get('data')
            if self.resolution == 'original':
                pred, gt = self._at_original_size(sample, logits)
            else:
                pred = sample['pred_sem_seg']['data'][0]
                gt = sample['gt_sem_seg']['data'][0].to(pred.device)
            if pred.shape != gt.shape:
                raise ValueError(f'episode {sample["episode"]}: prediction {tuple(pred.shape)} and ground '
                                 f'truth {tuple(gt.shape)} differ in size')
            sums = _pixel_sums(pred, gt, self.ignore_index)
            bad = (~torch.isfinite(logits)).sum() if logits is not None else torch.zeros_like(sums[0])
            host = torch.cat([sums, bad[None].to(sums)]).tolist()  # one transfer per episode
            if host[4] and self.nonfinite == 'error':
                raise NonFiniteError(
                    f'episode {sample["episode"]} (class {sample["class_id"]}): {host[4]} of {logits.numel()} logits '
                    'are NaN or inf, so its prediction means nothing. Likely causes: per-episode adaptation '
                    'diverged (lower episode_adaptation.optimizer.lr), or float16 overflow under --amp (use '
                    "--amp-dtype bfloat16). test_evaluator.nonfinite='report' evaluates anyway and reports the "
                    'count of such episodes beside the metrics')
            self.results.append((sample['episode'], sample['class_id'], _tp_fp_fn_tn(host[:4]), host[4] > 0))

    def _at_original_size(self, sample: dict, logits: torch.Tensor) -> tuple:
        """(prediction, mask), [H, W] each, at the query's size as stored on disk."""
        meta = {k: sample[k] for k in ('seg_map_path', 'img_path', 'ori_shape', 'mask_label') if k in sample}
        if 'seg_map_path' not in meta:
            raise ValueError(f'episode {sample["episode"]}: scoring at the original resolution needs the '
                             "query's seg_map_path in the metainfo")
        gt = torch.from_numpy(self.gt_loader(meta)['gt_seg_map'])
        if logits.shape[-2:] != gt.shape:
            logits = F.interpolate(logits[None].float(), size=gt.shape, mode='bilinear',
                                   align_corners=self.align_corners)[0]
        return logits.argmax(0), gt.to(logits.device)

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        episodes = np.array([r[0] for r in results])
        if len(np.unique(episodes)) != len(episodes):
            raise ValueError('an episode was evaluated twice; check the sampler (drop duplicates)')
        class_ids = np.array([r[1] for r in results])
        counts = np.stack([r[2] for r in results])
        metrics: Dict[str, float] = {}
        nonfinite = sum(r[3] for r in results)
        if nonfinite:
            print_log(f'{nonfinite} of {len(results)} episodes have NaN or inf logits; the metrics count their '
                      'predictions as they are (nonfinite_episodes)', logger='current', level=logging.WARNING)
        if 'standard' in self.protocols:
            std = standard_iou(class_ids, counts)
            metrics.update(mIoU=100 * std['mIoU'], FBIoU=100 * std['FBIoU'])
            self._log_table(std['per_class'])
            metrics.update({f'IoU.{self._name(c)}': 100 * v for c, v in std['per_class'].items()})
        if 'official' in self.protocols:
            meta = self.dataset_meta or {}
            if meta.get('official_num_classes') is None:
                raise ValueError(f'the official metric needs official_num_classes in the metainfo of the evaluated '
                                 f'dataset (classes {list(meta.get("classes", ()))[:5]}...); set metrics=["standard"]')
            metrics['official.mIoU'] = 100 * official_iou(
                episodes, class_ids + meta.get('official_class_offset', 0), counts, self.official_batch_size,
                meta['official_num_classes'])
        if self.nonfinite == 'report':
            metrics['nonfinite_episodes'] = float(nonfinite)
        return metrics

    def _name(self, class_id: int) -> str:
        names = (self.dataset_meta or {}).get('classes')
        return names[class_id] if names else str(class_id)

    def _log_table(self, per_class: Dict[int, float]) -> None:
        """Every class's IoU, or with more than 20 classes a summary (mean, worst and best 5)."""
        text = per_class_text({self._name(c): 100 * v for c, v in per_class.items()}, 'per-class results')
        print_log(text, logger=MMLogger.get_current_instance())
