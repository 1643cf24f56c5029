"""Parameter-free building blocks of the SSP/IFA head, as pure tensor functions.

The head works on *tokens*: a feature map [N, C, h, w] laid out as [N, L, C] (``L = h*w``,
channels contiguous), together with its rows scaled to unit length once (:class:`Tokens`).
Every cosine similarity is then a dot product with unit rows: one matrix product against
global prototypes, a row-wise product against per-pixel ones, instead of normalising the
whole feature map again for every prototype. Token prototypes are [N, 1, C] (global) or
[N, L, C] (per pixel); token logits are [N, L, 2].

The functions without the ``token_`` prefix take and return [N, C, h, w] maps. Logits
always have two channels, channel 0 the background and channel 1 the foreground.
"""
from typing import NamedTuple, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

NORM_EPS = 1e-8  # the norm clamp of F.cosine_similarity


class Tokens(NamedTuple):
    """A feature map in the head's layout.

    Attributes:
        raw: [N, L, C] features.
        unit: [N, L, C] ``raw`` with every row divided by ``max(|row|, NORM_EPS)``.
    """
    raw: Tensor
    unit: Tensor


def to_tokens(feat: Tensor) -> Tokens:
    """[N, C, h, w] (or [N, C, L]) features -> :class:`Tokens`."""
    raw = feat.flatten(2).transpose(1, 2).contiguous()
    return Tokens(raw, raw / raw.norm(dim=2, keepdim=True).clamp_min(NORM_EPS))


def token_prototype(proto: Tensor) -> Tensor:
    """[N, C, 1, 1] or [N, C, h, w] prototype -> [N, 1, C] or [N, L, C] (a view)."""
    return proto.flatten(2).transpose(1, 2)


def tokens_to_map(tokens: Tensor, size: Tuple[int, int]) -> Tensor:
    """[N, L, C] tokens (logits, prototypes) -> contiguous [N, C, h, w]."""
    return tokens.transpose(1, 2).unflatten(2, size).contiguous()


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


def token_cosine_logits(unit: Tensor, fg: Tensor, bg: Tensor, scale: float) -> Tensor:
    """Scaled cosine similarity of unit rows to a background and a foreground prototype.

    Args:
        unit: [N, L, C] unit-length rows (:attr:`Tokens.unit`).
        fg, bg: [N, 1, C] global or [N, L, C] per-pixel prototypes.
        scale: logit scale (10 in IFA).

    Returns:
        [N, L, 2] logits ``scale * (cos(x, bg), cos(x, fg))``.
    """
    protos = (bg, fg)
    norms = [p.norm(dim=2, keepdim=True).clamp_min(NORM_EPS) for p in protos]
    if bg.shape[1] == fg.shape[1] == 1:  # both global: one matrix product
        return torch.bmm(unit, torch.cat([p / n for p, n in zip(protos, norms)], 1).transpose(1, 2)) * scale
    cos = [row_dot(unit, p / n) if p.shape[1] == 1 else (unit * p).sum(2, keepdim=True) / n
           for p, n in zip(protos, norms)]
    return torch.cat(cos, 2) * scale


def row_dot(rows: Tensor, vec: Tensor) -> Tensor:
    """[N, L, C] rows . [N, 1, C] vector -> [N, L, 1], with the same rounding for any N.

    A batched matrix-vector product takes another kernel for N = 1 than for N > 1, so an
    episode's logits would depend on its batch (which per-episode adaptation amplifies);
    a two-column product (the vector and zeros) takes the same kernel for every N.
    """
    return torch.bmm(rows, torch.cat((vec, torch.zeros_like(vec)), 1).transpose(1, 2))[..., :1]


def cosine_logits(feat: Tensor, fg: Tensor, bg: Tensor, scale: float) -> Tensor:
    """:func:`token_cosine_logits` on maps.

    Args:
        feat: [N, C, h, w] features.
        fg: [N, C, 1, 1] global or [N, C, h, w] per-pixel foreground prototype.
        bg: [N, C, 1, 1] or [N, C, h, w] background prototype.
        scale: logit scale.

    Returns:
        [N, 2, h, w] logits.
    """
    logits = token_cosine_logits(to_tokens(feat).unit, token_prototype(fg), token_prototype(bg), scale)
    return tokens_to_map(logits, feat.shape[-2:])


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


def selected_mean(raw: Tensor, sel: Tensor) -> Tensor:
    """Mean of the selected rows: ``raw`` [N, L, C], ``sel`` [N, L] non-empty per row -> [N, 1, C]."""
    w = sel.to(raw.dtype)[:, None]
    return torch.bmm(w, raw) / w.sum(2, keepdim=True)


class BlockedAttention(torch.autograd.Function):
    """``softmax(queries @ keys.T) @ values`` for one image, keeping one [L, S] matrix for autograd.

    The queries go in blocks of :attr:`BLOCK` rows in both passes. A [BLOCK, S] block of
    scores or of their gradient stays in cache (the matrix products run ~10% faster so
    on CPU), and the only [L, S] matrix is the softmax weights kept for the backward
    pass. Computed in the inputs' common dtype (the softmax in at least float32), outside autocast.
    """

    BLOCK = 256

    @staticmethod
    def forward(ctx, queries: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        dtype = torch.promote_types(torch.promote_types(queries.dtype, keys.dtype), values.dtype)
        queries, keys, values = queries.to(dtype), keys.to(dtype), values.to(dtype)
        softmax_dtype = torch.promote_types(dtype, torch.float32)
        weights = queries.new_empty(len(queries), len(keys))
        out = queries.new_empty(len(queries), values.shape[1])
        with torch.autocast(queries.device.type, enabled=False):
            for i in range(0, len(queries), BlockedAttention.BLOCK):
                rows = slice(i, i + BlockedAttention.BLOCK)
                weights[rows] = torch.mm(queries[rows], keys.t()).softmax(1, dtype=softmax_dtype)
                torch.mm(weights[rows], values, out=out[rows])
        ctx.save_for_backward(queries, keys, values, weights)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        queries, keys, values, weights = ctx.saved_tensors
        grad = grad.to(weights.dtype)
        grad_queries, grad_keys = torch.empty_like(queries), torch.zeros_like(keys)
        with torch.autocast(grad.device.type, enabled=False):
            for i in range(0, len(queries), BlockedAttention.BLOCK):
                rows = slice(i, i + BlockedAttention.BLOCK)
                grad_scores = torch.mm(grad[rows], values.t())  # softmax backward, one block of rows
                grad_scores -= (grad_scores * weights[rows]).sum(1, keepdim=True)
                grad_scores *= weights[rows]
                torch.mm(grad_scores, keys, out=grad_queries[rows])
                torch.addmm(grad_keys, grad_scores.t(), queries[rows], out=grad_keys)
            return grad_queries, grad_keys, torch.mm(weights.t(), grad)


SELF_SUPPORT_IMPLS = ('auto', 'select', 'masked')


def resolve_self_support_impl(impl: str, device: torch.device) -> str:
    """``'auto'`` -> ``'masked'`` on CUDA, ``'select'`` elsewhere; other values are returned as they are."""
    if impl not in SELF_SUPPORT_IMPLS:
        raise ValueError(f'self_support_impl must be one of {SELF_SUPPORT_IMPLS}, got {impl!r}')
    if impl == 'auto':
        return 'masked' if device.type == 'cuda' else 'select'
    return impl


def masked_local_prototypes(tokens: Tokens, sel: Tensor, temperature: float) -> Tensor:
    """:func:`token_local_prototypes` with static shapes: all images at once, the selection as a mask.

    Every pixel attends over all ``L`` pixels of its image, the unselected ones masked out
    of the softmax (``scaled_dot_product_attention`` with a boolean mask, batched over the
    images): no ``nonzero``, no per-image kernels, nothing that waits for the host, so it
    suits accelerators (and CUDA graphs). It computes the same function as the selecting
    path; an image with an empty selection gives zero prototypes (and zero gradients), as
    the selecting path does. Costs ``L`` keys per image instead of ``|S|``.

    Args:
        tokens: the image features.
        sel: [N, L] bool selection.
        temperature: similarity multiplier inside the softmax.

    Returns:
        [N, L, C] per-pixel prototypes.
    """
    some = sel.any(dim=1, keepdim=True)  # [N, 1]
    # an empty row attends everywhere (finite) and is zeroed below, so that no NaN reaches the gradients
    mask = (sel | ~some)[:, None, None, :]  # [N, 1, 1, L]: True = attend
    unit = tokens.unit[:, None]
    out = F.scaled_dot_product_attention(unit, unit, tokens.raw[:, None], attn_mask=mask, scale=temperature)[:, 0]
    return out * some[..., None].to(out.dtype)


def token_local_prototypes(tokens: Tokens, sel: Tensor, temperature: float, impl: str = 'select') -> Tensor:
    """Per-pixel prototypes attending over the selected pixels of the same image.

    For pixel i: ``sum_j softmax_j(temperature * <f_i/|f_i|, f_j/|f_j|>) f_j`` over j in
    the selection (the official code divides by the bare norm; :attr:`Tokens.unit`
    clamps it at 1e-8, which only matters for an all-zero feature, where the official
    code returns NaN). With ``impl='select'`` each image attends over exactly its own
    selection, so no padding or mask is needed. Without gradients this is one fused
    attention that never forms the [L, |S|] weights; with gradients it is
    :class:`BlockedAttention`, whose backward pass is about 3x faster on CPU than the
    fused kernel's. ``impl='masked'`` is :func:`masked_local_prototypes` (static shapes,
    for accelerators); ``'auto'`` picks ``'masked'`` on CUDA and ``'select'`` elsewhere.

    Args:
        tokens: the image features.
        sel: [N, L] bool selection, non-empty per row (an empty row gives zero prototypes).
        temperature: similarity multiplier inside the softmax (2 in SSP).
        impl: ``'select'``, ``'masked'`` or ``'auto'``.

    Returns:
        [N, L, C] per-pixel prototypes.
    """
    if resolve_self_support_impl(impl, tokens.raw.device) == 'masked':
        return masked_local_prototypes(tokens, sel, temperature)
    outs = []
    # unbind's backward is a stack (one copy); a single image is a view (no copy)
    images = (zip(tokens.unit.unbind(), tokens.raw.unbind()) if len(sel) > 1
              else [(tokens.unit.squeeze(0), tokens.raw.squeeze(0))])
    for (unit, raw), s in zip(images, sel):
        index = s.nonzero()[:, 0]
        # a row lookup: embedding's backward is ~5x faster on CPU than index_select's, more under load
        keys, vals = F.embedding(index, unit), F.embedding(index, raw)
        if torch.is_grad_enabled() and (unit.requires_grad or raw.requires_grad):
            # scaling the keys rather than the [L, |S|] scores (exact for the power-of-two 2.0)
            outs.append(BlockedAttention.apply(unit, keys * temperature, vals))
        else:
            outs.append(F.scaled_dot_product_attention(unit[None], keys[None], vals[None], scale=temperature)[0])
    return outs[0][None] if len(outs) == 1 else torch.stack(outs)


def local_prototypes(feat: Tensor, sel: Tensor, temperature: float, impl: str = 'select') -> Tensor:
    """:func:`token_local_prototypes` on [N, C, L] features; returns [N, C, L]."""
    return token_local_prototypes(to_tokens(feat), sel, temperature, impl).transpose(1, 2)


def token_self_support(tokens: Tokens, logits: Tensor, fg_thresh: float, bg_thresh: float, topk: int,
                       temperature: float, impl: str = 'select') -> Tuple[Tensor, Tensor, Tensor]:
    """SSP: prototypes taken from the confident pixels of the image itself.

    Args:
        tokens: the image features.
        logits: [N, L, 2] current token logits on them.
        fg_thresh, bg_thresh: softmax probability thresholds (0.7 / 0.6).
        topk: fallback selection size (12).
        temperature: local-prototype softmax multiplier (2.0).
        impl: the per-pixel prototypes' formulation (:func:`token_local_prototypes`); the
            selections themselves (thresholds, top-k fallback) have static shapes either way.

    Returns:
        Global foreground [N, 1, C], global background [N, 1, C] and per-pixel
        background [N, L, C] prototypes. (The official code also builds per-pixel
        foreground prototypes but never uses them; they are not computed.)
    """
    prob = logits.softmax(2)
    fg_sel = select_confident(prob[..., 1], fg_thresh, topk)
    bg_sel = select_confident(prob[..., 0], bg_thresh, topk)
    return (selected_mean(tokens.raw, fg_sel), selected_mean(tokens.raw, bg_sel),
            token_local_prototypes(tokens, bg_sel, temperature, impl))


def self_support_prototypes(feat: Tensor, logits: Tensor, fg_thresh: float, bg_thresh: float,
                            topk: int, temperature: float, impl: str = 'select') -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`token_self_support` on maps.

    Args:
        feat: [N, C, h, w] features.
        logits: [N, 2, h, w] current prediction on ``feat``.
        fg_thresh, bg_thresh, topk, temperature, impl: as :func:`token_self_support`.

    Returns:
        Global foreground [N, C, 1, 1], global background [N, C, 1, 1] and
        per-pixel background [N, C, h, w] prototypes.
    """
    fg, bg, local = token_self_support(to_tokens(feat), logits.flatten(2).transpose(1, 2), fg_thresh, bg_thresh,
                                       topk, temperature, impl)
    return fg.transpose(1, 2)[..., None], bg.transpose(1, 2)[..., None], tokens_to_map(local, feat.shape[-2:])
