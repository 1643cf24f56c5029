import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ifa_mmseg.models import IFAResNet

from .helpers.episodes import packed_episodes
from .helpers.models import build_r50


def test_parameter_counts():
    m = IFAResNet(depth=50)
    assert sum(p.numel() for p in m.parameters()) == 8_667_072
    trainable = {n: p.numel() for n, p in m.named_parameters() if p.requires_grad}
    assert sum(trainable.values()) == 8_290_304
    assert all(n.startswith(('layer2.', 'layer3.')) and '.conv' in n or '.downsample.0.' in n for n in trainable)


def test_architecture():
    m = IFAResNet(depth=50).eval()
    assert [m.stem[i].out_channels for i in (0, 3, 6)] == [64, 64, 128]
    assert len(m.res_layers) == 3 and not hasattr(m, 'layer4')
    assert m.layer3[0].conv2.dilation == (1, 1) and m.layer3[1].conv2.dilation == (2, 2)
    with torch.no_grad():
        out = m(torch.randn(1, 3, 64, 64))
    assert len(out) == 1 and out[0].shape == (1, 1024, 8, 8)  # output stride 8
    assert (out[0] < 0).any()  # no ReLU after the last block


def test_depth_101_and_bad_depth():
    assert len(IFAResNet(depth=101).layer3) == 23
    with pytest.raises(ValueError, match='depth 50 or 101'):
        IFAResNet(depth=18)


def test_bn_eval_in_train_mode():
    m = IFAResNet(depth=50).train()
    assert all(not mod.training for mod in m.modules() if isinstance(mod, _BatchNorm))


def test_optimizer_step_changes_only_stage2_3_convs(root):
    model = build_r50(root)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    model.train()
    data = model.data_preprocessor(packed_episodes(2, 1, 64, seed=7), True)
    losses = model(**data, mode='loss')
    sum(losses.values()).backward()
    optim.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, 'the step changed nothing'
    allowed = {k for k in before if k.startswith(('backbone.layer2.', 'backbone.layer3.'))
               and k.endswith('.weight') and ('.conv' in k or '.downsample.0.' in k)}
    assert changed <= allowed
    assert len(changed) == len(allowed)  # every layer2/layer3 conv gets a gradient
