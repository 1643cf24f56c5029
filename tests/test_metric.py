import os

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from ifa_mmseg.evaluation import FewShotIoUMetric, episode_counts, official_iou, standard_iou

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'official_metric', 'official_metric.npz'))
KINDS = ('deepglobe', 'isic', 'lung', 'fss')


def counts_of(kind):
    preds, gts = FIXTURE[f'{kind}_pred'], FIXTURE[f'{kind}_gt']
    return np.stack([episode_counts(torch.from_numpy(p), torch.from_numpy(g)) for p, g in zip(preds, gts)])


def samples(kind, offset=0):
    out = []
    for i, (p, g) in enumerate(zip(FIXTURE[f'{kind}_pred'], FIXTURE[f'{kind}_gt'])):
        s = SegDataSample(metainfo=dict(episode=i, class_id=int(FIXTURE[f'{kind}_class'][i]) - offset))
        s.pred_sem_seg = PixelData(data=torch.from_numpy(p).long()[None])
        s.gt_sem_seg = PixelData(data=torch.from_numpy(g).long()[None])
        out.append(s.to_dict())
    return out


@pytest.mark.parametrize('kind', KINDS)
def test_official_replica_matches_official_code(kind):
    n = len(FIXTURE[f'{kind}_class'])
    for bs in FIXTURE[f'{kind}_batch_sizes']:
        ours = official_iou(np.arange(n), FIXTURE[f'{kind}_class'], counts_of(kind), int(bs),
                            int(FIXTURE[f'{kind}_num_classes']))
        assert ours == pytest.approx(float(FIXTURE[f'{kind}_official_bs{bs}']), abs=1e-12), bs


def run_metric(metric, data, chunk, order=None):
    order = range(len(data)) if order is None else order
    data = [data[i] for i in order]
    for start in range(0, len(data), chunk):
        metric.process({}, data[start:start + chunk])
    return metric.compute_metrics(metric.results)


def metric_for(num_classes, offset=0, **kwargs):
    """A metric told the class facts by the evaluated dataset's metainfo, as the test loop does."""
    metric = FewShotIoUMetric(**kwargs)
    metric.dataset_meta = dict(classes=tuple(f'c{i}' for i in range(num_classes)), official_num_classes=num_classes,
                               official_class_offset=offset)
    return metric


def test_metric_independent_of_our_batching():
    """Official value at the official batch size 4, whatever batches this run uses."""
    data = samples('deepglobe')
    ref = None
    for chunk, order in ((1, None), (12, None), (96, None), (7, np.random.RandomState(0).permutation(30))):
        metric = metric_for(6, official_batch_size=4)
        res = run_metric(metric, data, chunk, order)
        ref = ref or res
        assert res == pytest.approx(ref, abs=1e-12)
    assert ref['official.mIoU'] == pytest.approx(100 * float(FIXTURE['deepglobe_official_bs4']), abs=1e-10)


def test_two_ranks_equal_one():
    """Results split as a 2-process DistributedSampler would (interleaved), then gathered."""
    data = samples('isic')
    one = run_metric(metric_for(3, official_batch_size=6), data, 5)
    gathered = data[0::2] + data[1::2]
    two = run_metric(metric_for(3, official_batch_size=6), gathered, 5)
    assert one == pytest.approx(two, abs=1e-12)


def test_class_offset_for_fss():
    metric = metric_for(240, offset=520, official_batch_size=12)
    metric.dataset_meta['official_num_classes'] = 1000
    res = run_metric(metric, samples('fss', offset=520), 3)
    assert res['official.mIoU'] == pytest.approx(100 * float(FIXTURE['fss_official_bs12']), abs=1e-10)


def test_standard_by_hand():
    # class 0: two episodes, class 1: one episode; (TP, FP, FN, TN)
    counts = np.array([[3, 1, 0, 4], [1, 0, 1, 6], [0, 2, 2, 4]])
    res = standard_iou(np.array([0, 0, 1]), counts)
    assert res['per_class'] == {0: pytest.approx(4 / 6), 1: 0.0}
    assert res['mIoU'] == pytest.approx(1 / 3)
    fg, bg = 4 / (4 + 3 + 3), 14 / (14 + 3 + 3)
    assert res['FBIoU'] == pytest.approx((fg + bg) / 2)


def test_official_equals_fbiou_when_batches_start_at_class_0():
    """With a batch size that is a multiple of the class count, the official Deepglobe number is FB-IoU
    (every batch's first episode is of class 0, so ``test.py`` labels all of them class 1)."""
    res = run_metric(metric_for(6, official_batch_size=12), samples('deepglobe'), 5)
    # 30 episodes: batches 0-11, 12-23 start at class 0, batch 24-29 too
    assert res['official.mIoU'] == pytest.approx(res['FBIoU'], abs=1e-10)


def test_errors():
    with pytest.raises(ValueError, match='official_batch_size'):
        FewShotIoUMetric()
    metric = metric_for(6, protocols=('official', ), official_batch_size=4)
    data = samples('deepglobe')
    with pytest.raises(ValueError, match=r'first episodes \[0\]'):
        run_metric(metric, data[1:], 4)
    metric = FewShotIoUMetric(protocols=('standard', ))
    with pytest.raises(ValueError, match='twice'):
        run_metric(metric, data + data[:1], 4)
    metric = FewShotIoUMetric(protocols=('official', ), official_batch_size=4)  # no official class facts
    metric.dataset_meta = dict(classes=('a', 'b'))
    with pytest.raises(ValueError, match='official_num_classes in the metainfo'):
        run_metric(metric, data, 4)


def test_class_names_come_from_the_dataset():
    """The per-class keys follow the evaluated dataset's metainfo, whatever the config says."""
    res = run_metric(metric_for(6, official_batch_size=4), samples('deepglobe'), 5)
    assert {f'IoU.c{i}' for i in range(6)} <= set(res)


def test_original_resolution(tmp_path):
    """Scoring at each query's stored size: masks re-read from disk, logits resized to them."""
    from mmseg.registry import DATASETS
    from PIL import Image

    from .helpers import fake_layouts
    fake_layouts.write_deepglobe(str(tmp_path))  # images of 18-40 px a side, never square by design
    pipeline = [dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask'),
                dict(type='FewShotResize', scale=(32, 32))]
    ds = DATASETS.build(dict(type='DeepglobeDataset', data_root=str(tmp_path), num_episodes=12, pipeline=pipeline))
    data, on_disk = [], []
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        logits = 10 * torch.nn.functional.one_hot(sample.gt_sem_seg.data[0], 2).permute(2, 0, 1).float()
        sample.seg_logits = PixelData(data=logits)
        sample.pred_sem_seg = PixelData(data=logits.argmax(0, keepdim=True))
        data.append(sample.to_dict())
        on_disk.append(torch.from_numpy(np.asarray(Image.open(sample.seg_map_path).convert('L')) >= 128).long())
    assert any(gt.shape != (32, 32) for gt in on_disk)

    def mean_iou(**kwargs):
        return run_metric(FewShotIoUMetric(protocols=('standard', ), **kwargs), data, 5)['mIoU']

    assert mean_iou() == 100.0
    counts = []
    for sample, gt in zip(data, on_disk):
        up = torch.nn.functional.interpolate(sample['seg_logits']['data'][None], size=gt.shape, mode='bilinear',
                                             align_corners=True)[0]
        counts.append(episode_counts(up.argmax(0), gt))
    expected = 100 * standard_iou(np.array([s['class_id'] for s in data]), np.stack(counts))['mIoU']
    original = mean_iou(resolution='original')
    assert original == pytest.approx(expected, abs=1e-9) and 50 < original < 100
    for sample, gt in zip(data, on_disk):  # the model already resized (test_cfg.resize_to_original)
        sample['seg_logits']['data'] = torch.nn.functional.one_hot(gt, 2).permute(2, 0, 1).float()
    assert mean_iou(resolution='original') == 100.0
    with pytest.raises(ValueError, match='resolution'):
        FewShotIoUMetric(protocols=('standard', ), resolution='400')


def class_samples(num_classes, size=6):
    """One episode per class; class c predicts the first c cells of its query's 6x6 foreground-only mask."""
    out = []
    for c in range(num_classes):
        s = SegDataSample(metainfo=dict(episode=c, class_id=c))
        pred = torch.zeros(size * size, dtype=torch.long)
        pred[:c] = 1
        s.pred_sem_seg = PixelData(data=pred.view(1, size, size))
        s.gt_sem_seg = PixelData(data=torch.ones(1, size, size, dtype=torch.long))
        out.append(s.to_dict())
    return out


@pytest.mark.parametrize('num_classes', [20, 25])
def test_per_class_log_is_a_summary_beyond_20_classes(num_classes, monkeypatch):
    """Up to 20 classes every class is logged; more: mean, worst 5 and best 5 by name (issue 13)."""
    from ifa_mmseg.evaluation import fewshot_metric
    logged = []
    monkeypatch.setattr(fewshot_metric, 'print_log', lambda msg, **kwargs: logged.append(msg))
    res = run_metric(metric_for(num_classes, protocols=('standard', )), class_samples(num_classes), 7)
    assert len([k for k in res if k.startswith('IoU.')]) == num_classes  # every class is still returned
    (text, ) = logged
    rows = [line for line in text.splitlines() if line.startswith('|')][1:]
    if num_classes <= 20:
        assert len(rows) == num_classes and '| c19 |' in text.replace('  ', ' ')
    else:
        assert len(rows) == 10 and f'{num_classes} classes, mean fg IoU {100 * np.mean(np.arange(25) / 36):.2f}' in text
        worst = [r.split('|')[2].strip() for r in rows[:5]]
        best = [r.split('|')[2].strip() for r in rows[5:]]
        assert worst == ['c0', 'c1', 'c2', 'c3', 'c4'] and best == ['c24', 'c23', 'c22', 'c21', 'c20']
