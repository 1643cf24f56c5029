"""Parameter-free building blocks of the SSP/IFA head, as pure tensor functions.

Shapes: ``N`` rows (episodes, or support images), ``C`` channels, ``h x w`` the
feature grid, ``H x W`` the image. Logits always have two channels, channel 0 the
background and channel 1 the foreground.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_average_pooling(feat: Tensor, mask: Tensor, eps: float = 1e-5) -> Tensor:
    """Average of ``feat`` weighted by ``mask`` resized to the feature grid.

    Args:
        feat: [N, C, h, w] features.
        mask: [N, H, W] float weights (a binary mask); resized bilinearly with
            ``align_corners=True``, so boundary cells get fractional weights.
        eps: added to the weight sum; an empty mask gives a zero prototype.

    Returns:
        [N, C] prototypes.
    """
    mask = F.interpolate(mask[:, None], size=feat.shape[-2:], mode='bilinear', align_corners=True)
    return (feat * mask).sum(dim=(2, 3)) / (mask.sum(dim=(2, 3)) + eps)


def cosine_logits(feat: Tensor, fg: Tensor, bg: Tensor, scale: float) -> Tensor:
    """Scaled cosine similarity to a background and a foreground prototype.

    Args:
        feat: [N, C, h, w] features.
        fg: [N, C, 1, 1] global or [N, C, h, w] per-pixel foreground prototype.
        bg: [N, C, 1, 1] or [N, C, h, w] background prototype.
        scale: logit scale (10 in IFA).

    Returns:
        [N, 2, h, w] logits ``scale * (cos(feat, bg), cos(feat, fg))``.
    """
    return torch.stack((F.cosine_similarity(feat, bg, dim=1),
                        F.cosine_similarity(feat, fg, dim=1)), dim=1) * scale


def select_confident(prob: Tensor, thresh: float, topk: int) -> Tensor:
    """Pixels whose probability exceeds ``thresh``; the ``topk`` most probable if none does.

    Args:
        prob: [N, L] probabilities of one class over the ``L = h*w`` pixels.
        thresh: strict lower bound.
        topk: fallback size for rows with an empty selection (capped at ``L``).

    Returns:
        [N, L] bool selection with at least one pixel per row.
    """
    sel = prob > thresh
    top = prob.topk(min(topk, prob.shape[1]), dim=1).indices
    fallback = torch.zeros_like(sel).scatter_(1, top, True)
    return torch.where(sel.any(dim=1, keepdim=True), sel, fallback)


def selected_mean(feat: Tensor, sel: Tensor) -> Tensor:
    """Mean of the selected columns.

    Args:
        feat: [N, C, L] features.
        sel: [N, L] bool selection, non-empty per row.

    Returns:
        [N, C, 1, 1] mean feature of each row's selection.
    """
    w = sel.to(feat.dtype)
    return (torch.einsum('ncl,nl->nc', feat, w) / w.sum(1, keepdim=True))[..., None, None]


def local_prototypes(feat: Tensor, sel: Tensor, temperature: float) -> Tensor:
    """Per-pixel prototypes attending over the selected pixels of the same row.

    For pixel i: ``sum_j softmax_j(temperature * <f_i/|f_i|, f_j/|f_j|>) f_j`` over j in
    the selection (no eps in the norms, as the official code). Rows are padded to the
    largest selection and the padding is masked, so a batch runs as one fused
    attention and no [L, |S|] matrix is kept.

    Args:
        feat: [N, C, L] features.
        sel: [N, L] bool selection, non-empty per row.
        temperature: similarity multiplier inside the softmax (2 in SSP).

    Returns:
        [N, C, L] per-pixel prototypes.
    """
    n, c, _ = feat.shape
    count = sel.sum(1)
    size = int(count.max())
    # stable sort puts each row's selected pixels first, in pixel order
    order = torch.argsort((~sel).to(torch.uint8), dim=1, stable=True)[:, :size]
    values = feat.transpose(1, 2)                                   # [N, L, C]
    normed = values / values.norm(dim=2, keepdim=True)
    index = order[..., None].expand(n, size, c)
    keys = normed.gather(1, index)                                   # [N, S, C]
    vals = values.gather(1, index)
    valid = torch.arange(size, device=feat.device)[None] < count[:, None]
    out = F.scaled_dot_product_attention(
        normed[:, None], keys[:, None], vals[:, None], attn_mask=valid[:, None, None], scale=temperature)
    return out[:, 0].transpose(1, 2)


def self_support_prototypes(feat: Tensor, logits: Tensor, fg_thresh: float, bg_thresh: float,
                            topk: int, temperature: float) -> Tuple[Tensor, Tensor, Tensor]:
    """SSP: prototypes taken from the confident pixels of the image itself.

    Args:
        feat: [N, C, h, w] features.
        logits: [N, 2, h, w] current prediction on ``feat``.
        fg_thresh, bg_thresh: softmax probability thresholds (0.7 / 0.6).
        topk: fallback selection size (12).
        temperature: local-prototype softmax multiplier (2.0).

    Returns:
        Global foreground [N, C, 1, 1], global background [N, C, 1, 1] and
        per-pixel background [N, C, h, w] prototypes. (The official code also builds
        per-pixel foreground prototypes but never uses them; they are not computed.)
    """
    n, c, h, w = feat.shape
    prob = logits.softmax(1).flatten(2)                               # [N, 2, L]
    flat = feat.flatten(2)
    fg_sel = select_confident(prob[:, 1], fg_thresh, topk)
    bg_sel = select_confident(prob[:, 0], bg_thresh, topk)
    bg_local = local_prototypes(flat, bg_sel, temperature).reshape(n, c, h, w)
    return selected_mean(flat, fg_sel), selected_mean(flat, bg_sel), bg_local
