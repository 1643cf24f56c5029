import copy

import pytest
import torch
from mmengine import Config
from ifa_mmseg.engine import FewShotRunner, mean_ci95
from ifa_mmseg.utils import enable_amp


def make_runner(root, tmp_path, seeds):
    cfg = Config.fromfile(f'{root}/tests/helpers/toy_config.py')
    cfg.work_dir = str(tmp_path)
    cfg.test_seeds = seeds
    return FewShotRunner.from_cfg(copy.deepcopy(cfg))


def test_mean_and_interval_over_seeds(root, tmp_path):
    summary = make_runner(root, tmp_path / 'all', (0, 1, 2)).test()
    single = [make_runner(root, tmp_path / f's{s}', (s, )).test() for s in (0, 1, 2)]
    for key in ('mIoU', 'FBIoU', 'official.mIoU', 'IoU.0', 'IoU.1'):
        values = [s[key] for s in single]
        assert len(set(values)) > 1, f'{key}: seeds gave identical episodes'
        assert summary[key] == pytest.approx(sum(values) / 3)
        assert summary[f'{key}_ci95'] == pytest.approx(mean_ci95(values)['ci95'])
        assert single[0][f'{key}_ci95'] == 0.0


def test_ci95_formula():
    # t(0.975, 4) = 2.7764; std(ddof=1) of 1..5 = 1.5811
    assert mean_ci95([1, 2, 3, 4, 5])['ci95'] == pytest.approx(2.7764 * 1.5811 / 5 ** 0.5, rel=1e-4)


def test_bf16_autocast_evaluation(root, tmp_path, monkeypatch):
    """``amp_dtype='bfloat16'`` runs the model under bf16 autocast; metrics stay close to fp32."""
    from ifa_mmseg.models.segmentors import IFASegmentor
    dtypes = []
    original = IFASegmentor.predict

    def spy(self, *args, **kwargs):
        dtypes.append(torch.get_autocast_dtype('cpu') if torch.is_autocast_enabled('cpu') else None)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(IFASegmentor, 'predict', spy)
    full = make_runner(root, tmp_path / 'fp32', (0, )).test()
    assert set(dtypes) == {None}
    cfg = Config.fromfile(f'{root}/tests/helpers/toy_config.py')
    cfg.work_dir = str(tmp_path / 'bf16')
    cfg.test_seeds = (0, )
    enable_amp(cfg, 'bfloat16')
    assert cfg.test_cfg.amp_dtype == 'bfloat16' and cfg.optim_wrapper.dtype == 'bfloat16'
    dtypes.clear()
    half = FewShotRunner.from_cfg(cfg).test()
    assert set(dtypes) == {torch.bfloat16}
    # a random toy model has many near-ties, which bf16 rounding flips: only a loose bound here
    # (the trained demo on a GPU is the accuracy check, docs/benchmarks.md)
    for key in ('mIoU', 'FBIoU'):
        assert abs(half[key] - full[key]) < 5.0, (key, half[key], full[key])


def test_amp_dtype_is_checked(root, tmp_path):
    with pytest.raises(ValueError, match='amp_dtype'):
        cfg = Config.fromfile(f'{root}/tests/helpers/toy_config.py')
        cfg.work_dir = str(tmp_path)
        cfg.test_cfg.amp_dtype = 'float64'
        FewShotRunner.from_cfg(cfg).test()
    with pytest.raises(ValueError, match='amp dtype'):
        enable_amp(Config(dict()), 'float64')


def test_per_seed_table_shows_the_summary_metrics_and_the_classes_go_to_a_csv(root, tmp_path, monkeypatch):
    import csv

    from ifa_mmseg.engine import multi_seed_test_loop
    logged = []
    original = multi_seed_test_loop.print_log
    monkeypatch.setattr(multi_seed_test_loop, 'print_log',
                        lambda msg, **kwargs: (logged.append(msg), original(msg, **kwargs)))
    summary = make_runner(root, tmp_path, (0, 1)).test()
    table = next(m for m in logged if m.startswith('results over episode seeds'))
    header = [c.strip() for c in table.splitlines()[2].split('|')[1:-1]]
    assert header == ['seed', 'mIoU', 'FBIoU', 'official.mIoU']
    per_class = next(m for m in logged if m.startswith('per-class fg IoU over episode seeds'))
    assert str(tmp_path / 'per_class_iou.csv') in per_class and 'seed 1' in per_class
    with open(tmp_path / 'per_class_iou.csv') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['class', 'seed_0', 'seed_1', 'mean', 'ci95']
    assert [r[0] for r in rows[1:]] == ['0', '1']
    assert float(rows[1][3]) == pytest.approx(summary['IoU.0'], abs=1e-4)
    assert float(rows[2][4]) == pytest.approx(summary['IoU.1_ci95'], abs=1e-4)
    assert any('episode seed 1 (2/2): 4 episodes in 2 batches; the last seed took' in m for m in logged)


def test_many_classes_log_a_summary_and_hooks_get_the_summary_metrics(tmp_path, monkeypatch):
    """Beyond 20 classes (FSS-1000: 240): mean, worst and best 5 by name in the log, every class in the CSV."""
    import csv
    import types

    from ifa_mmseg.engine import MultiSeedTestLoop, multi_seed_test_loop
    logged = []
    monkeypatch.setattr(multi_seed_test_loop, 'print_log', lambda msg, **kwargs: logged.append(msg))
    loop = object.__new__(MultiSeedTestLoop)
    loop.seeds = (0, 1)
    loop._runner = types.SimpleNamespace(work_dir=str(tmp_path / 'work'))
    names = [f'class_{i:02d}' for i in range(30)]
    per_seed = [dict(mIoU=50.0 + s, FBIoU=60.0, **{f'IoU.{n}': float(i + s) for i, n in enumerate(names)})
                for s in (0, 1)]
    summary = loop._summarise(per_seed)
    assert summary['IoU.class_29'] == 29.5 and summary['mIoU'] == 50.5
    seed_table = logged[0]
    assert 'IoU.' not in seed_table and max(len(line) for line in seed_table.splitlines()) < 80
    text = logged[1]
    assert '30 classes, mean fg IoU 15.00' in text and 'worst 1' in text and 'best 5' in text
    assert 'class_00' in text and 'class_29' in text and 'class_15' not in text
    with open(tmp_path / 'work' / 'per_class_iou.csv') as f:
        rows = list(csv.reader(f))
    assert len(rows) == 31 and rows[30] == ['class_29', '29.0000', '30.0000', '29.5000', rows[30][4]]
    hooked = loop._hook_metrics(summary)
    assert set(hooked) == {'mIoU', 'mIoU_ci95', 'FBIoU', 'FBIoU_ci95'}


def test_eta_of_each_seed_is_its_own(root, tmp_path):
    """The timer hook's test clock restarts with every seed, so Iter(test) lines show that seed's ETA."""
    from mmengine.hooks import Hook, IterTimerHook
    runner = make_runner(root, tmp_path, (0, 1, 2))
    timer = next(h for h in runner.hooks if isinstance(h, IterTimerHook))
    seen = []

    class Record(Hook):
        def before_test_iter(self, runner, batch_idx, data_batch=None):
            if batch_idx == 0:
                seen.append(timer.time_sec_test_val)

    runner.register_hook(Record(), priority='VERY_LOW')
    runner.test()
    assert seen == [0, 0, 0]
