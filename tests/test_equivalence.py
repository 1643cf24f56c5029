"""Our IFA model against outputs of the official code (tests/fixtures/official/README.md)."""
import os

import numpy as np
import pytest
import torch

from .helpers.models import build_r50
from .helpers.official_recipe import make_episodes

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'official')
RTOL = 1e-5


def load_case(name):
    fx = np.load(os.path.join(FIXTURES, f'{name}.npz'))
    ep = make_episodes(int(fx['batch']), int(fx['shot']), int(fx['size']), int(fx['seed']),
                       empty_support=(1, 0) if name.endswith('empty') else None)
    for key in ('query', 'supports', 'support_masks', 'query_mask'):  # recipe unchanged?
        assert float(ep[key].double().sum()) == pytest.approx(float(fx[f'chk_{key}']), rel=1e-6)
    return fx, ep


def rel_err(a, b):
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope='module')
def models(root):
    return {order: build_r50(root, support_order=order) for order in ('official', 'correct')}


def run(model, ep, train):
    model.train(train)
    with torch.no_grad():
        return model.forward_episode(ep['query'], ep['supports'], ep['support_masks'],
                                     ep['query_mask'] if train else None)


def test_query_features(models):
    fx, ep = load_case('eval_k1')
    with torch.no_grad():
        feat = models['official'].eval().extract_feat(ep['query'])
    assert rel_err(feat, torch.from_numpy(fx['feat_q'])) <= RTOL


@pytest.mark.parametrize('case', ['eval_k1', 'eval_k1_empty', 'eval_k5'])
def test_eval_logits(models, case):
    fx, ep = load_case(case)
    for order in ('official', 'correct'):  # inference does not depend on the support order
        out = run(models[order], ep, train=False)
        assert set(out) == {'q_refine', 'q1'}
        for key, value in out.items():
            assert rel_err(value, torch.from_numpy(fx[key])) <= RTOL, (order, key)


def test_fallback_case_takes_fallback():
    fx, _ = load_case('eval_k1_empty')
    assert int(fx['fallback_calls']) > 0


@pytest.mark.parametrize('case', ['train_k1', 'train_k5'])
def test_train_outputs_and_losses(models, case):
    fx, ep = load_case(case)
    model = models['official']
    out = run(model, ep, train=True)
    assert list(out) == ['q_refine', 'q1', 'q_self', 's_self', 's1', 'q2', 's2', 'q3', 's3']
    for key, value in out.items():
        assert rel_err(value, torch.from_numpy(fx[key])) <= RTOL, key
    s_masks = ep['support_masks'].transpose(0, 1).flatten(0, 1)
    losses = model.decode_head.loss(out, ep['query_mask'], s_masks)
    assert sum(losses.values()).item() == pytest.approx(float(fx['loss_ifa']), rel=RTOL)
    for key, weight in model.decode_head.loss_weights.items():
        assert losses[f'loss_{key}'].item() == pytest.approx(weight * float(fx[f'ce_{key}']), rel=RTOL)


@pytest.mark.parametrize('case', ['train_k1', 'train_k5'])
def test_source_loss(root, case):
    fx, ep = load_case(case)
    model = build_r50(root, 'ifa_r50_source', support_order='official')
    out = run(model, ep, train=True)
    assert set(out) == {'q_refine', 'q1', 'q_self', 's_self', 's1'}  # iterations 2, 3 not computed
    losses = model.decode_head.loss(out, ep['query_mask'], ep['support_masks'].transpose(0, 1).flatten(0, 1))
    assert sum(losses.values()).item() == pytest.approx(float(fx['loss_src']), rel=RTOL)


def test_k5_support_order(models):
    """'correct' keeps every episode's supports to itself; 'official' mixes them as ``IFA_MatchingNet.iter_BFP``."""
    _, ep = load_case('train_k5')
    batch = {order: run(models[order], ep, train=True) for order in models}
    single = [run(models['correct'], {k: v[b:b + 1] for k, v in ep.items()}, train=True) for b in range(2)]
    for key, value in batch['correct'].items():
        rows = value.unflatten(0, (-1, 2)) if key.startswith('s') else value[None]
        for b in range(2):
            ref = single[b][key]
            assert rel_err(rows[:, b], ref if key.startswith('s') else ref[0]) <= RTOL, key
    # iteration 1 query side agrees; everything fed by the support side differs
    for key in ('q_refine', 'q1', 'q_self', 's_self'):
        assert rel_err(batch['official'][key], batch['correct'][key]) <= RTOL
    for key in ('s1', 'q2', 's2', 'q3', 's3'):
        assert rel_err(batch['official'][key], batch['correct'][key]) > 1e-3, key
    # with one episode per batch both orders coincide
    one = {k: v[:1] for k, v in ep.items()}
    a, b = run(models['official'], one, True), run(models['correct'], one, True)
    assert all(rel_err(a[k], b[k]) <= RTOL for k in a)
