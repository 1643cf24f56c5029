"""Our HSNet and PATNet against outputs of the official code (tests/fixtures/official_hypercorr/README.md)."""
import os

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from ifa_mmseg.models.utils import hypercorr_key

from .helpers.hypercorr_recipe import build_hypercorr, official_state_dict
from .helpers.official_recipe import make_episodes

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'official_hypercorr')
MODELS = ('hsnet', 'patnet')
CASES = ((1, 1), (1, 4), (5, 1), (5, 4))  # (shot, batch)
RTOL = 1e-5
MARGIN = 1e-4  # a pixel whose foreground-background logit margin is below this may round either way


def rel_err(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture(scope='module')
def fixtures():
    return {name: np.load(os.path.join(FIXTURES, f'{name}.npz')) for name in MODELS}


@pytest.fixture(scope='module')
def models(root):
    return {name: build_hypercorr(root, name) for name in MODELS}


def case(fx, shot, batch):
    """The fixture arrays of one case and its episodes, checked against the recipe the fixture was made from."""
    seed = {(int(k), int(b)): int(s) for k, b, s in fx['cases']}[(shot, batch)]
    ep = make_episodes(batch, shot, int(fx['size']), seed)
    arrays = {key.split('.', 1)[1]: fx[key] for key in fx.files if key.startswith(f'k{shot}_b{batch}.')}
    for key, value in ep.items():
        assert float(value.double().sum()) == pytest.approx(float(arrays[f'chk_{key}']), rel=1e-12), key
    return arrays, ep


def samples(ep):
    out = []
    for b in range(ep['query'].shape[0]):
        shape = tuple(ep['query'].shape[-2:])
        s = SegDataSample(metainfo=dict(img_shape=shape, ori_shape=shape))
        s.gt_sem_seg = PixelData(data=ep['query_mask'][b][None])
        s.support_imgs = ep['supports'][b]
        s.support_masks = ep['support_masks'][b]
        out.append(s)
    return out


@pytest.mark.parametrize('name', MODELS)
def test_recipe_weights_unchanged(fixtures, name):
    total = sum(float(v.double().sum()) for v in official_state_dict(name).values())
    assert total == pytest.approx(float(fixtures[name]['chk_weights']), rel=1e-12)


@pytest.mark.parametrize('shot,batch', CASES)
@pytest.mark.parametrize('name', MODELS)
def test_inference(models, fixtures, name, shot, batch):
    """Per-shot logits and the K-shot vote of ``predict`` (``predict_mask_nshot``), in eval mode."""
    fx, ep = case(fixtures[name], shot, batch)
    model = models[name].eval()
    with torch.no_grad():
        logits = model.forward_episode(ep['query'], ep['supports'], ep['support_masks'])
        preds = model.predict(ep['query'], samples(ep))
    size = int(fixtures[name]['size'])
    assert logits.shape == (batch, shot, 2, size // 4, size // 4)
    assert rel_err(logits, torch.from_numpy(fx['logits'])) <= RTOL
    if 'logits_full' in fx:
        full = torch.stack([s.seg_logits.data for s in preds])[:, None]
        assert rel_err(full, torch.from_numpy(fx['logits_full'])) <= RTOL
    pred = torch.stack([s.pred_sem_seg.data[0] for s in preds])
    differs = pred != torch.from_numpy(fx['pred']).long()
    margins = model._upsample(logits, ep['query'].shape[-2:]).diff(dim=2).abs().amin((1, 2))
    assert not (differs & (margins >= MARGIN)).any(), int(differs.sum())


@pytest.mark.parametrize('shot,batch', CASES)
@pytest.mark.parametrize('name', MODELS)
def test_training(models, fixtures, name, shot, batch):
    """Train-mode logits, the loss and, for the official 1-shot setting, gradients."""
    fx, ep = case(fixtures[name], shot, batch)
    model = models[name].train()
    model.zero_grad()
    if 'logits_full' in fx:
        with torch.no_grad():
            logits = model._forward(ep['query'], samples(ep))
        assert logits.shape == (batch, shot, 2, *ep['query'].shape[-2:])
        assert rel_err(logits, torch.from_numpy(fx['logits_full'])) <= RTOL
    shots = []  # the head's output for each shot, during the loss's forward
    hook = model.decode_head.register_forward_hook(lambda module, args, out: shots.append(out.detach()))
    try:
        losses = model.loss(ep['query'], samples(ep))
    finally:
        hook.remove()
    assert rel_err(torch.stack(shots, 1), torch.from_numpy(fx['logits'])) <= RTOL
    assert set(losses) == {'loss_ce'}
    assert losses['loss_ce'].item() == pytest.approx(float(fx['loss']), rel=RTOL)
    grads = {key[len('grad.'):]: value for key, value in fx.items() if key.startswith('grad.')}
    if not grads:
        return
    losses['loss_ce'].backward()
    params = dict(model.named_parameters())
    assert len(grads) == (7 if name == 'patnet' else 4)
    for key, value in grads.items():
        assert rel_err(params[hypercorr_key(key)].grad, torch.from_numpy(value)) <= RTOL, key
