import copy

import pytest
from mmengine import Config
from mmengine.runner import Runner

from ifa_mmseg.engine import mean_ci95


def make_runner(root, tmp_path, seeds):
    cfg = Config.fromfile(f'{root}/tests/helpers/toy_config.py')
    cfg.work_dir = str(tmp_path)
    cfg.test_cfg.seeds = seeds
    return Runner.from_cfg(copy.deepcopy(cfg))


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
