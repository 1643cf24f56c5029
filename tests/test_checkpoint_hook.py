"""FewShotCheckpointHook: the official '>=' selection (ties go to the later epoch) and the best.pth link."""
import os

import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmseg.registry import METRICS

import ifa_mmseg  # noqa: F401  (registers FewShotCheckpointHook)

SCORES = [50.0, 70.0, 70.0, 60.0]  # epochs 1-4: epoch 3 ties epoch 2


@METRICS.register_module(force=True)
class ScriptedScoreMetric(BaseMetric):
    """Returns the next of ``SCORES`` at every evaluation."""

    calls = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0)

    def compute_metrics(self, results) -> dict:
        ScriptedScoreMetric.calls += 1
        return {'official.mIoU': SCORES[ScriptedScoreMetric.calls - 1]}


class TinyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.weight * torch.stack(inputs).float()
        return dict(loss=out.square().mean()) if mode == 'loss' else [out]


def run(tmp_path, rule: str, val_begin: int = 1) -> Runner:
    # a fresh experiment name: runners made within one second would otherwise share a MessageHub (and best score)
    ScriptedScoreMetric.calls = 0
    loader = dict(dataset=[dict(inputs=torch.ones(1))] * 2, batch_size=2, sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='pseudo_collate'))
    runner = Runner(
        model=TinyModel(), work_dir=str(tmp_path), default_scope='mmseg', experiment_name=tmp_path.name,
        train_dataloader=loader, val_dataloader=loader, val_evaluator=dict(type='ScriptedScoreMetric'),
        train_cfg=dict(by_epoch=True, max_epochs=4, val_begin=val_begin), val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)),
        default_hooks=dict(checkpoint=dict(type='FewShotCheckpointHook', interval=10, save_best='official.mIoU',
                                           rule=rule)))
    runner.train()
    return runner


def best_files(tmp_path):
    return sorted(f for f in os.listdir(tmp_path) if f.startswith('best_'))


def test_ties_go_to_the_later_epoch_and_best_link_follows(tmp_path):
    run(tmp_path, 'greater_equal')
    assert best_files(tmp_path) == ['best_official.mIoU_epoch_3.pth']
    assert os.readlink(tmp_path / 'best.pth') == 'best_official.mIoU_epoch_3.pth'


def test_greater_keeps_the_earlier_epoch(tmp_path):
    run(tmp_path, 'greater')
    assert best_files(tmp_path) == ['best_official.mIoU_epoch_2.pth']


def test_val_begin_skips_the_first_epochs(tmp_path):
    """Source selection (train.py) only considers epochs >= 2 (0-based): mmengine's epochs 3 and 4."""
    run(tmp_path, 'greater_equal', val_begin=3)
    assert ScriptedScoreMetric.calls == 2
    assert os.readlink(tmp_path / 'best.pth') == 'best_official.mIoU_epoch_4.pth'  # scores 50 then 70
