"""The head's pure functions against direct per-episode formulations."""
import torch

from ifa_mmseg.models.heads.prototypes import (cosine_logits, local_prototypes, masked_average_pooling,
                                               select_confident, self_support_prototypes)


def reference_ssp(feat, logits, fg_thresh=0.7, bg_thresh=0.6, topk=12, temperature=2.0):
    """Per-episode loop like the official ``IFA_MatchingNet.SSP_func`` (``model/IFA_matching.py``), for comparison."""
    fgs, bgs, locs = [], [], []
    prob = logits.softmax(1).flatten(2)
    for f, p in zip(feat.flatten(2), prob):
        def pick(pr, thr):
            idx = (pr > thr).nonzero()[:, 0]
            return idx if len(idx) else pr.topk(topk).indices
        fg, bg = f[:, pick(p[1], fg_thresh)], f[:, pick(p[0], bg_thresh)]
        fn = f / f.norm(dim=0, keepdim=True)
        att = (fn.t() @ (bg / bg.norm(dim=0, keepdim=True)) * temperature).softmax(-1)
        fgs.append(fg.mean(1))
        bgs.append(bg.mean(1))
        locs.append((att @ bg.t()).t())
    n, c, h, w = feat.shape
    return (torch.stack(fgs)[..., None, None], torch.stack(bgs)[..., None, None],
            torch.stack(locs).reshape(n, c, h, w))


def test_masked_average_pooling():
    feat = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    mask = torch.zeros(2, 9, 9, dtype=torch.float64)
    mask[0, :5, :5] = 1  # align_corners=True: exactly the top-left 3x3 feature cells
    proto = masked_average_pooling(feat, mask)
    assert torch.allclose(proto[0], feat[0, :, :3, :3].mean((1, 2)), atol=1e-4)
    assert torch.equal(proto[1], torch.zeros(4, dtype=torch.float64))  # empty mask -> zero prototype


def test_cosine_logits_channels():
    feat = torch.randn(1, 8, 3, 3)
    out = cosine_logits(feat, feat, -feat, scale=10.0)
    assert torch.allclose(out[:, 1], torch.full((1, 3, 3), 10.0))   # channel 1 = foreground
    assert torch.allclose(out[:, 0], torch.full((1, 3, 3), -10.0))


def test_select_confident_fallback():
    prob = torch.tensor([[0.9, 0.1, 0.2, 0.3], [0.5, 0.1, 0.4, 0.6]])
    sel = select_confident(prob, thresh=0.7, topk=2)
    assert sel[0].tolist() == [True, False, False, False]
    assert sel[1].tolist() == [True, False, False, True]  # no pixel above 0.7: top-2


def test_self_support_matches_loop():
    torch.manual_seed(0)
    feat = torch.randn(3, 16, 6, 7, dtype=torch.float64)
    logits = torch.randn(3, 2, 6, 7, dtype=torch.float64) * 3
    logits[2] = torch.tensor([0.0, -5.0], dtype=torch.float64)[:, None, None]  # forces the fg fallback
    ours = self_support_prototypes(feat, logits, 0.7, 0.6, 12, 2.0)
    ref = reference_ssp(feat, logits)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-12)


def test_local_prototypes_gradient():
    feat = torch.randn(2, 8, 20, dtype=torch.float64, requires_grad=True)
    sel = torch.rand(2, 20) > 0.5
    sel[:, 0] = True
    assert torch.autograd.gradcheck(lambda f: local_prototypes(f, sel, 2.0), (feat, ))


def test_head_channels_from_features():
    """No hard-coded 1024: any channel count works."""
    from ifa_mmseg.models import IFAHead
    head = IFAHead()
    fq, fs = torch.randn(2, 48, 6, 6), torch.randn(2, 48, 6, 6)
    masks = (torch.rand(2, 24, 24) > 0.5).float()
    out = head(fq, fs, masks, query_mask=masks.long(), training=True)
    assert out['q3'].shape == (2, 2, 24, 24) and out['s3'].shape == (2, 2, 24, 24)
    assert not any(True for _ in head.parameters())  # parameter-free


def test_blocked_attention_over_several_blocks(monkeypatch):
    """BlockedAttention with 4-row blocks: forward and gradients of the plain softmax attention."""
    from ifa_mmseg.models.heads.prototypes import BlockedAttention
    monkeypatch.setattr(BlockedAttention, 'BLOCK', 4)
    torch.manual_seed(0)
    q = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    k = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    v = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    out = BlockedAttention.apply(q, k, v)
    ref = (q @ k.t()).softmax(1) @ v
    assert torch.allclose(out, ref, atol=1e-12)
    grad = torch.randn_like(ref)
    ours = torch.autograd.grad(out, (q, k, v), grad)
    theirs = torch.autograd.grad(ref, (q, k, v), grad)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.autograd.gradcheck(BlockedAttention.apply, (q, k, v))


def test_head_chunks_on_cpu_equal_the_whole_batch(monkeypatch):
    """The CPU chunking of episodes (one per chunk here) leaves every training output unchanged."""
    from ifa_mmseg.models import IFAHead
    from ifa_mmseg.models.heads import ifa_head
    torch.manual_seed(0)
    b, shot = 3, 2
    fq, fs = torch.randn(b, 16, 6, 6), torch.randn(shot * b, 16, 6, 6)
    masks = (torch.rand(shot * b, 24, 24) > 0.5).float()
    qmask = (torch.rand(b, 24, 24) > 0.5).long()
    head = IFAHead()
    whole = [head(fq, fs, masks, query_mask=qmask, training=True), head(fq, fs, masks)]
    calls = []
    monkeypatch.setattr(ifa_head, 'cpu_chunk_size', lambda nbytes: calls.append(nbytes) or 1)
    chunked = [head(fq, fs, masks, query_mask=qmask, training=True), head(fq, fs, masks)]
    assert len(calls) == 2, 'the chunked path was not taken'
    for ref, ours in zip(whole, chunked):  # training, then inference
        assert ref.keys() == ours.keys()
        for key in ref:
            assert torch.allclose(ref[key], ours[key], atol=1e-5), key


def test_backbone_chunks_without_grad_equal_the_whole_batch(root, monkeypatch):
    from ifa_mmseg.models.backbones import ifa_resnet
    from tests.helpers.models import build_r50
    backbone = build_r50(root).backbone.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        whole = backbone(x)
        monkeypatch.setattr(ifa_resnet, 'cpu_chunk_size', lambda nbytes: 1)
        chunked = backbone(x)
    for a, b in zip(whole, chunked):  # the same up to float rounding (batch size changes the kernels' blocking)
        assert float((a - b).norm() / a.norm()) < 1e-5


def test_masked_local_prototypes_gradient_and_loop():
    """The static-shape formulation against the per-episode loop, and its gradients (gradcheck)."""
    torch.manual_seed(0)
    feat = torch.randn(3, 16, 6, 7, dtype=torch.float64)
    logits = torch.randn(3, 2, 6, 7, dtype=torch.float64) * 3
    logits[2] = torch.tensor([-5.0, 0.0], dtype=torch.float64)[:, None, None]  # forces the bg fallback
    ours = self_support_prototypes(feat, logits, 0.7, 0.6, 12, 2.0, impl='masked')
    for a, b in zip(ours, reference_ssp(feat, logits)):
        assert torch.allclose(a, b, atol=1e-12)
    f = torch.randn(2, 8, 20, dtype=torch.float64, requires_grad=True)
    sel = torch.rand(2, 20) > 0.5
    sel[:, 0] = True
    assert torch.autograd.gradcheck(lambda x: local_prototypes(x, sel, 2.0, impl='masked'), (f, ))
