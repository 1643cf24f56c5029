"""HSNet / PATNet components: backbone, head checks, K-shot vote, segmentor modes, strict loading."""
import pytest
import torch
from mmseg.registry import MODELS

from ifa_mmseg.models import MultiLayerResNet
from ifa_mmseg.models.heads.hypercorrelation import vote_shots
from ifa_mmseg.models.utils import CheckpointMismatchError
from ifa_mmseg.utils.official_recipe import torchvision_state_dict

from .helpers.episodes import packed_episodes
from .helpers.hypercorr_recipe import build_hypercorr, hypercorr_cfg, official_state_dict


@pytest.fixture(scope='module')
def hsnet(root):
    return build_hypercorr(root, 'hsnet')


def test_backbone_takes_torchvision_weights_and_returns_every_bottleneck():
    backbone = MultiLayerResNet(depth=50)
    weights = {k: v for k, v in torchvision_state_dict(50).items() if not k.startswith('fc.')}
    backbone.load_state_dict(weights, strict=True)  # torchvision's names, as the config's torchvision://resnet50
    backbone.train()
    assert not backbone.bn1.training and not any(p.requires_grad for p in backbone.parameters())
    feats = backbone(torch.randn(1, 3, 64, 64, requires_grad=True))
    assert backbone.num_blocks == (4, 6, 3) and len(feats) == 13
    assert [tuple(f.shape[1:]) for f in feats] == [(512, 8, 8)] * 4 + [(1024, 4, 4)] * 6 + [(2048, 2, 2)] * 3
    assert all((f < 0).any() for f in feats)  # taken before the block's ReLU
    assert not any(f.requires_grad for f in feats)
    assert MultiLayerResNet(depth=101).num_blocks == (4, 23, 3)


def test_heads_name_a_backbone_that_does_not_fit(root, hsnet):
    cfg = hypercorr_cfg(root, 'hsnet')
    cfg.backbone.out_indices = (2, 3)
    with pytest.raises(ValueError, match=r'the backbone returns \(6, 3\) maps per layer group but the head correlates '
                       r'num_blocks=\(4, 6, 3\)'):
        MODELS.build(cfg)
    feats = hsnet.extract_feat(torch.randn(1, 3, 64, 64))[4:]  # what a backbone of 9 maps gives
    with pytest.raises(ValueError, match=r'HSNetHead expects 13 feature maps \(num_blocks=\(4, 6, 3\).*gave 9'):
        hsnet.decode_head(feats, feats, torch.ones(1, 64, 64))
    data = hsnet.data_preprocessor(packed_episodes(1, 1, 64), False)
    cfg = hypercorr_cfg(root, 'patnet')
    cfg.decode_head.in_channels = (256, 1024, 2048)
    model = MODELS.build(cfg)
    with pytest.raises(ValueError, match=r'PATNetHead: layer group 0 has 512 channels, its anchors 256'):
        model(**data, mode='tensor')
    with pytest.raises(ValueError, match='correlates 3 layer groups'):
        MODELS.build(dict(type='HSNetHead', num_blocks=(6, 3)))


def test_vote_shots():
    def logits(votes):  # [B, K, H, W] 0/1 -> logits whose argmax is the vote
        votes = torch.tensor(votes)
        return torch.stack((1 - votes, votes), 2).float()

    one = logits([[[[0, 1], [1, 0]]]])
    assert torch.equal(vote_shots(one), torch.tensor([[[0, 1], [1, 0]]]))
    # counts 0, 1, 2, 1 of 3 shots; the largest count is 2: a count of 1 is half of it, so foreground
    three = logits([[[[0, 1], [1, 0]], [[0, 0], [1, 1]], [[0, 0], [0, 0]]]])
    assert torch.equal(vote_shots(three), torch.tensor([[[0, 1], [1, 1]]]))
    # counts 3, 2, 1: 2 >= 3 / 2 -> foreground, 1 < 3 / 2 -> background; no vote at all -> background
    assert torch.equal(vote_shots(logits([[[[1, 1, 0]], [[1, 0, 1]], [[1, 1, 0]]]])), torch.tensor([[[1, 1, 0]]]))
    assert torch.equal(vote_shots(logits([[[[0, 0]]], [[[0, 0]]]])), torch.zeros(2, 1, 2, dtype=torch.long))


def test_modes(hsnet):
    data = hsnet.data_preprocessor(packed_episodes(2, 3, 64, seed=1), True)
    hsnet.train()
    losses = hsnet(**data, mode='loss')
    assert set(losses) == {'loss_ce'} and losses['loss_ce'].requires_grad
    hsnet.eval()
    with torch.no_grad():
        logits = hsnet(**data, mode='tensor')
        samples = hsnet(**data, mode='predict')
    assert logits.shape == (2, 3, 2, 64, 64)
    for b, sample in enumerate(samples):
        assert torch.equal(sample.seg_logits.data, logits[b].mean(0))
        assert torch.equal(sample.pred_sem_seg.data, vote_shots(logits[b:b + 1]))


def test_resize_to_original_upsamples_the_head_output(hsnet):
    data = hsnet.data_preprocessor(packed_episodes(1, 1, 64, seed=2), False)
    data['data_samples'][0].set_metainfo(dict(ori_shape=(50, 70)))
    hsnet.eval()
    hsnet.test_cfg = dict(resize_to_original=True)
    try:
        with torch.no_grad():
            sample = hsnet(**data, mode='predict')[0]
            supports, masks, _ = hsnet._episode_tensors(data['inputs'], data['data_samples'])
            low = hsnet.forward_episode(data['inputs'], supports, masks)
    finally:
        hsnet.test_cfg = dict(resize_to_original=False)
    assert sample.seg_logits.data.shape == (2, 50, 70) and sample.pred_sem_seg.data.shape == (1, 50, 70)
    assert torch.equal(sample.seg_logits.data, hsnet._upsample(low, (50, 70))[0, 0])


@pytest.mark.parametrize('name', ['hsnet', 'patnet'])
def test_unconverted_official_checkpoint_is_refused(root, name):
    model = MODELS.build(hypercorr_cfg(root, name))
    with pytest.raises(CheckpointMismatchError, match=f'official {"PATNet" if name == "patnet" else "HSNet"} '
                       f'checkpoint: convert it first with tools/model_converters/{name}_official_to_mmseg.py'):
        model.load_state_dict(official_state_dict(name, data_parallel=False), strict=False)
