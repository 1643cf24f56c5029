import pytest
import torch

from .helpers.episodes import packed_episodes
from .helpers.models import build_r50
from .helpers.official_recipe import make_episodes

@pytest.fixture(scope='module')
def model(root):
    return build_r50(root)


def test_preprocessor_normalises_query_and_supports(model):
    packed = packed_episodes(2, 3, 32, seed=1)
    data = model.data_preprocessor(packed, False)
    mean = torch.tensor([123.675, 116.28, 103.53])[:, None, None]
    std = torch.tensor([58.395, 57.12, 57.375])[:, None, None]
    assert data['inputs'].shape == (2, 3, 32, 32)
    assert torch.allclose(data['inputs'][1], (packed['inputs'][1].float() - mean) / std)
    sup = data['data_samples'][0].support_imgs
    assert sup.shape == (3, 3, 32, 32) and sup.dtype == torch.float32
    assert torch.allclose(sup[2], (packed['data_samples'][0].support_imgs[2].float() - mean) / std)


def test_loss_mode_one_key_per_term(model):
    model.train()
    losses = model(**model.data_preprocessor(packed_episodes(2, 2, 32, seed=2), True), mode='loss')
    assert set(losses) == {f'loss_{k}' for k in ('q_refine', 'q1', 'q_self', 's_self', 's1',
                                                    'q2', 's2', 'q3', 's3')}
    assert all(v.ndim == 0 and torch.isfinite(v) and v.requires_grad for v in losses.values())


def test_source_loss_skips_iterations(root):
    model = build_r50(root, 'ifa_r50_source').train()
    calls = []
    orig = model.decode_head.bfp_iteration
    model.decode_head.bfp_iteration = lambda *a, **k: calls.append(a[3] is not None) or orig(*a, **k)
    losses = model(**model.data_preprocessor(packed_episodes(1, 1, 32), True), mode='loss')
    assert set(losses) == {f'loss_{k}' for k in ('q_refine', 'q1', 'q_self', 's_self', 's1')}
    assert calls == [True]  # one iteration, with its support direction


def test_predict_and_tensor_modes(model):
    model.eval()
    packed = packed_episodes(2, 1, 32, seed=3)
    data = model.data_preprocessor(packed, False)
    with torch.no_grad():
        samples = model(**data, mode='predict')
        logits = model(**model.data_preprocessor(packed_episodes(2, 1, 32, seed=3), False), mode='tensor')
    assert set(logits) == {'q_refine', 'q1'}
    for b, s in enumerate(samples):
        assert s.seg_logits.data.shape == (2, 32, 32)
        assert s.pred_sem_seg.data.shape == (1, 32, 32)
        assert torch.equal(s.pred_sem_seg.data[0], logits['q_refine'][b].argmax(0))


def test_predict_resize_to_original(root):
    model = build_r50(root, ).eval()
    model.test_cfg = dict(resize_to_original=True)
    packed = packed_episodes(1, 1, 32)
    packed['data_samples'][0].set_metainfo(dict(ori_shape=(50, 70)))
    with torch.no_grad():
        s = model(**model.data_preprocessor(packed, False), mode='predict')[0]
    assert s.pred_sem_seg.data.shape == (1, 50, 70)


def test_forward_episode_shapes(model):
    ep = make_episodes(2, 3, 32, seed=5)
    model.train()
    out = model.forward_episode(ep['query'], ep['supports'], ep['support_masks'], ep['query_mask'])
    for k, v in out.items():
        assert v.shape == ((6 if k.startswith('s') else 2), 2, 32, 32), k


def test_missing_supports_is_a_clear_error(model):
    packed = packed_episodes(1, 1, 32)
    del packed['data_samples'][0].support_imgs
    with pytest.raises(ValueError, match='support_imgs'):
        model(torch.zeros(1, 3, 32, 32), packed['data_samples'], mode='predict')


def test_bad_head_config():
    from ifa_mmseg.models import IFAHead
    with pytest.raises(ValueError, match='support_order'):
        IFAHead(support_order='episode')
    with pytest.raises(ValueError, match='q4'):
        IFAHead(loss_weights=dict(q4=1.0))
