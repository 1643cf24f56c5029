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
