"""The static-shape self-support path (``self_support_impl='masked'``) against the selecting one.

The masked formulation is what runs on CUDA by default; here it runs on the CPU and must
give the outputs and gradients of the selecting path (the CPU default, which the
equivalence tests check against the official code) within 1e-5 relative.
"""
import pytest
import torch

from ifa_mmseg.models.heads import prototypes
from ifa_mmseg.models.heads.prototypes import (resolve_self_support_impl, to_tokens, token_local_prototypes,
                                               token_self_support)

from .helpers.episodes import packed_episodes
from .helpers.models import build_r50

RTOL = 1e-5


def rel_err(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def weights_like(x):
    """A fixed, non-uniform output gradient."""
    return torch.linspace(-1, 1, x.numel(), dtype=x.dtype).view_as(x)


def run_both(fn, feat, train):
    """``fn(feat_copy, impl)`` for both implementations: {impl: (outputs, feature gradient or None)}."""
    results = {}
    for impl in ('select', 'masked'):
        x = feat.clone().requires_grad_(train)
        with torch.set_grad_enabled(train):
            outs = fn(x, impl)
        outs = outs if isinstance(outs, (tuple, list)) else (outs, )
        grad = None
        if train:
            grad, = torch.autograd.grad(sum((o * weights_like(o)).sum() for o in outs), x)
        results[impl] = ([o.detach() for o in outs], grad)
    return results


def assert_equal(results, what=''):
    (sel_outs, sel_grad), (msk_outs, msk_grad) = results['select'], results['masked']
    for i, (a, b) in enumerate(zip(msk_outs, sel_outs)):
        assert torch.isfinite(a).all(), (what, i)
        assert rel_err(a, b) <= RTOL, (what, i, rel_err(a, b))
    if sel_grad is not None:
        assert torch.isfinite(msk_grad).all(), what
        assert rel_err(msk_grad, sel_grad) <= RTOL, (what, 'grad', rel_err(msk_grad, sel_grad))


@pytest.mark.parametrize('train', [False, True])
def test_local_prototypes_masked_equals_select(train):
    """Random selections, an empty one (zero prototypes in both) and all-zero features."""
    torch.manual_seed(0)
    feat = torch.randn(3, 32, 60)
    feat[2, :, :7] = 0  # [N, C, L]; all-zero pixels: their unit rows are zero (the clamped norm)
    sel = torch.rand(3, 60) > 0.4
    sel[1] = False  # empty: zero prototypes and zero gradients, as the selecting path gives
    sel[2, :3] = True  # selected all-zero pixels
    results = run_both(lambda x, impl: token_local_prototypes(to_tokens(x), sel, 2.0, impl),
                       feat, train)
    assert_equal(results)
    assert torch.equal(results['masked'][0][0][1], torch.zeros(60, 32))


@pytest.mark.parametrize('train', [False, True])
def test_self_support_masked_equals_select(train):
    """SSP with threshold selections, the top-k fallback on both sides and an all-zero image."""
    torch.manual_seed(1)
    feat = torch.randn(4, 10 * 12, 24)
    logits = torch.randn(4, 120, 2) * 3
    logits[1] = torch.tensor([0.0, -5.0])  # no foreground above 0.7: foreground top-k fallback
    logits[2] = torch.tensor([-5.0, 0.0])  # no background above 0.6: background top-k fallback (attention over 12)
    feat[3] = 0  # an all-zero image
    results = run_both(lambda x, impl: token_self_support(to_tokens(x.transpose(1, 2)), logits, 0.7, 0.6, 12, 2.0,
                                                          impl), feat, train)
    assert_equal(results)


@pytest.mark.parametrize('shot', [1, 5])
@pytest.mark.parametrize('train', [False, True])
def test_head_masked_equals_select(shot, train):
    """The whole head, B=3 episodes, K=1 and K=5: every output and the features' gradients."""
    from ifa_mmseg.models import IFAHead
    torch.manual_seed(2)
    b = 3
    fq, fs = torch.randn(b, 32, 8, 8), torch.randn(shot * b, 32, 8, 8)
    fs[1] = 0  # an all-zero support image
    masks = (torch.rand(shot * b, 32, 32) > 0.6).float()
    masks[0] = 0  # an empty support mask (zero foreground prototype)
    qmask = (torch.rand(b, 32, 32) > 0.5).long()
    heads = {impl: IFAHead(self_support_impl=impl) for impl in ('select', 'masked')}
    results = {}
    for impl, head in heads.items():
        q, s = fq.clone().requires_grad_(train), fs.clone().requires_grad_(train)
        with torch.set_grad_enabled(train):
            out = head(q, s, masks, query_mask=qmask if train else None, training=train)
        grads = None
        if train:
            grads = torch.autograd.grad(sum((v * weights_like(v)).sum() for v in out.values()), (q, s))
        results[impl] = ({k: v.detach() for k, v in out.items()}, grads)
    (sel_out, sel_grads), (msk_out, msk_grads) = results['select'], results['masked']
    assert sel_out.keys() == msk_out.keys()
    for key in sel_out:
        assert rel_err(msk_out[key], sel_out[key]) <= RTOL, key
    if train:
        for a, b_ in zip(msk_grads, sel_grads):
            assert rel_err(a, b_) <= RTOL


def test_auto_picks_by_device(monkeypatch):
    assert resolve_self_support_impl('auto', torch.device('cpu')) == 'select'
    assert resolve_self_support_impl('auto', torch.device('cuda')) == 'masked'
    assert resolve_self_support_impl('masked', torch.device('cpu')) == 'masked'
    with pytest.raises(ValueError, match='self_support_impl'):
        resolve_self_support_impl('padded', torch.device('cpu'))
    from ifa_mmseg.models import IFAHead
    with pytest.raises(ValueError, match='self_support_impl'):
        IFAHead(self_support_impl='padded')
    assert IFAHead().self_support_impl == 'auto'

    def fail(*args):
        raise AssertionError('the masked path ran on the CPU by default')

    monkeypatch.setattr(prototypes, 'masked_local_prototypes', fail)
    fq, fs = torch.randn(2, 16, 6, 6), torch.randn(2, 16, 6, 6)
    masks = (torch.rand(2, 24, 24) > 0.5).float()
    IFAHead()(fq, fs, masks, query_mask=masks.long(), training=True)  # 'auto' on the CPU: selecting path


@pytest.fixture(scope='module')
def models(root):
    return {impl: build_r50(root, self_support_impl=impl) for impl in ('select', 'masked')}


@pytest.mark.parametrize('shot', [1, 5])
def test_segmentor_masked_equals_select(models, shot):
    """IFASegmentor: loss terms, backbone gradients and predictions of both paths."""
    packed = packed_episodes(3, shot, 64, seed=4)
    losses, grads, preds = {}, {}, {}
    for impl, model in models.items():
        model.train()
        model.zero_grad(set_to_none=True)
        loss = model(**model.data_preprocessor(packed, True), mode='loss')
        sum(loss.values()).backward()
        losses[impl] = {k: v.detach() for k, v in loss.items()}
        grads[impl] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        model.eval()
        with torch.no_grad():
            preds[impl] = model(**model.data_preprocessor(packed, False), mode='predict')
    for key in losses['select']:
        assert rel_err(losses['masked'][key], losses['select'][key]) <= RTOL, key
    assert grads['select'].keys() == grads['masked'].keys() and grads['select']
    for name in grads['select']:
        assert rel_err(grads['masked'][name], grads['select'][name]) <= RTOL, name
    for a, b in zip(preds['masked'], preds['select']):
        assert rel_err(a.seg_logits.data, b.seg_logits.data) <= RTOL


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_no_host_synchronisation_in_a_step(root):
    """A training step (forward, loss, backward, SGD) and an evaluation step never wait for the host.

    The batch is moved to the device (a blocking copy) before the checked region.
    """
    model = build_r50(root).cuda()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    packed = packed_episodes(2, 1, 64, seed=5)
    train_data = model.data_preprocessor(packed, True)
    eval_data = model.data_preprocessor(packed, False)
    for _ in range(2):  # the second pass runs with everything allocated and initialised
        model.train()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode('error')
        try:
            losses = model(**train_data, mode='loss')
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
            model.eval()
            with torch.no_grad():
                logits = model(**eval_data, mode='tensor')
        finally:
            torch.cuda.set_sync_debug_mode('default')
        torch.cuda.synchronize()
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert torch.isfinite(logits['q_refine']).all()


@pytest.mark.parametrize('bgr_to_rgb', [False, True])
def test_preprocessor_batched_normalisation_equals_the_cpu_one(bgr_to_rgb):
    """The accelerator path (stack, cast, normalise on the device), run on the CPU, gives the same values."""
    from ifa_mmseg.models.data_preprocessor import FewShotSegDataPreProcessor
    pre = FewShotSegDataPreProcessor(bgr_to_rgb=bgr_to_rgb)
    torch.manual_seed(3)
    for shape in ((3, 20, 24), (2, 3, 20, 24)):  # query images, K supports per episode
        imgs = [torch.randint(0, 256, shape, dtype=torch.uint8) for _ in range(3)]
        batched = pre._normalize_batched(imgs)
        assert batched.dtype == torch.float32 and batched.shape == (3, *shape)
        assert torch.equal(batched, pre._normalize(imgs))


def test_preprocessor_moves_uint8_and_normalises_after(monkeypatch):
    """The uint8 images themselves go through ``.to(device)``; normalisation sees them on the device."""
    from ifa_mmseg.models.data_preprocessor import FewShotSegDataPreProcessor
    pre = FewShotSegDataPreProcessor()
    packed = packed_episodes(2, 3, 32, seed=6)
    expected = pre(packed_episodes(2, 3, 32, seed=6), False)
    images = [*packed['inputs'], *(s.support_imgs for s in packed['data_samples'])]
    assert all(img.dtype == torch.uint8 for img in images)
    moved, normalised = [], []
    original_to = torch.Tensor.to

    def recording_to(self, *args, **kwargs):
        moved.append(id(self))
        return original_to(self, *args, **kwargs)

    original_normalize = FewShotSegDataPreProcessor._normalize

    def recording_normalize(self, imgs):
        normalised.append([(img.dtype, img.device) for img in imgs])
        return original_normalize(self, imgs)

    monkeypatch.setattr(torch.Tensor, 'to', recording_to)
    monkeypatch.setattr(FewShotSegDataPreProcessor, '_normalize', recording_normalize)
    data = pre(packed, False)
    monkeypatch.undo()
    assert all(id(img) in moved for img in images)  # each uint8 image moved as it is
    assert len(normalised) == 2 and all(d == (torch.uint8, pre.device) for call in normalised for d in call)
    assert torch.equal(data['inputs'], expected['inputs'])
    for a, b in zip(data['data_samples'], expected['data_samples']):
        assert torch.equal(a.support_imgs, b.support_imgs)
