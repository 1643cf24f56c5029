"""Any mmseg / mmpretrain backbone by config: a training step and a prediction on CPU."""
import pytest
import torch
from mmengine import Config
from mmengine.optim import OptimWrapper
from mmseg.registry import MODELS

from .helpers.episodes import packed_episodes


@pytest.mark.parametrize('config,channels', [('ifa_r101v1c', 1024), ('ifa_convnext_t', 384)])
def test_train_step_and_predict(root, config, channels):
    cfg = Config.fromfile(f'{root}/configs/_base_/models/{config}.py')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optim = OptimWrapper(torch.optim.SGD(trainable, lr=0.01))
    model.train()
    logs = model.train_step(packed_episodes(1, 1, 64, seed=11), optim)
    assert torch.isfinite(logs['loss']) and 'loss_s3' in logs
    assert any(not torch.equal(a, b) for a, b in zip(before, trainable))
    model.eval()
    out = model.test_step(packed_episodes(2, 2, 64, seed=12))
    assert len(out) == 2 and out[0].pred_sem_seg.data.shape == (1, 64, 64)
    with torch.no_grad():
        assert model.extract_feat(torch.zeros(1, 3, 64, 64)).shape[1] == channels
