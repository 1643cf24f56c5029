"""HSNet's hypercorrelation (ICCV 2021) and PATNet's pattern transformation (ECCV 2022) as pure functions.

The official code keeps one list entry per bottleneck map. Here the maps of one layer group (same
channels and size) are stacked into one tensor [N, L, C, h, w], so each step runs once per group.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def group_maps(feats: Sequence[Tensor], num_blocks: Sequence[int], owner: str) -> List[Tensor]:
    """Stack the maps of each layer group.

    Args:
        feats: L maps [N, C_l, h_l, w_l], shallow to deep (every bottleneck output of the grouped stages).
        num_blocks: maps per group, shallow to deep; they must add up to L.
        owner: who asks, for messages.

    Returns:
        One [N, L_g, C_g, h_g, w_g] tensor per group, shallow to deep.

    Raises:
        ValueError: the number of maps is not ``sum(num_blocks)``, or the maps of a group differ in shape.
    """
    if len(feats) != sum(num_blocks):
        raise ValueError(f'{owner} expects {sum(num_blocks)} feature maps (num_blocks={tuple(num_blocks)}: every '
                         f'bottleneck output of the correlated stages), but the backbone gave {len(feats)}; use '
                         'MultiLayerResNet or set num_blocks to what the backbone returns')
    groups, start = [], 0
    for g, n in enumerate(num_blocks):
        maps = feats[start:start + n]
        shapes = {tuple(m.shape) for m in maps}
        if len(shapes) != 1:
            raise ValueError(f'{owner}: the {n} maps of layer group {g} (maps {start}..{start + n - 1}) differ in '
                             f'shape: {sorted(shapes)}; num_blocks={tuple(num_blocks)} does not fit the backbone')
        groups.append(torch.stack(maps, 1))
        start += n
    return groups


def resize_mask(mask: Tensor, size: Tuple[int, int]) -> Tensor:
    """[N, H, W] binary mask -> [N, 1, 1, h, w] soft mask, bilinear with aligned corners.

    hsnet ``model/hsnet.py`` ``HypercorrSqueezeNetwork.mask_feature``; the extra dimension broadcasts
    over the maps of a group.
    """
    return F.interpolate(mask[:, None].float(), size, mode='bilinear', align_corners=True)[:, None]


def masked_prototypes(feats: Tensor, mask: Tensor, eps: float = 1e-6) -> Tuple[Tensor, Tensor]:
    """Foreground and background prototypes of support maps.

    patnet ``model/patnet.py`` ``PATNetwork.mask_feature``: the sums of the maps weighted by the
    resized mask (foreground) and by one minus it (background), each over its weight plus ``eps``.

    Args:
        feats: [N, L, C, h, w] support maps.
        mask: [N, 1, 1, h, w] resized mask (:func:`resize_mask`).

    Returns:
        Foreground and background prototypes, [N, L, C] each.
    """
    background = 1 - mask
    fg = (feats * mask).sum((3, 4)) / (mask.sum((3, 4)) + eps)
    bg = (feats * background).sum((3, 4)) / (background.sum((3, 4)) + eps)
    return fg, bg


def pattern_transform(feats: Tensor, fg: Tensor, bg: Tensor, anchors: Tensor, eps: float = 1e-6) -> Tensor:
    """PATNet's pattern-agnostic transformation of the maps of one layer group.

    patnet ``model/patnet.py`` ``PATNetwork.Transformation_Feature``: with the unit-normalised
    prototypes ``P = [bg; fg]`` [2, C] and anchors ``A`` [2, C] (row 0 background, row 1
    foreground), the official code builds the C x C matrix ``T = pinv(P) A`` and maps every feature
    vector ``f`` to ``T^T f``. Since ``T^T f = A^T (pinv(P)^T f)``, it is applied here as two rank-2
    products, without building ``T``; the pseudo-inverse keeps the official tolerance (1e-15).

    Args:
        feats: [N, L, C, h, w] maps (query maps, or masked support maps).
        fg, bg: [N, L, C] support prototypes of each map (:func:`masked_prototypes`).
        anchors: [2, C] anchor vectors of the group.
        eps: added to the norms.

    Returns:
        [N, L, C, h, w] transformed maps.
    """
    protos = torch.stack((bg, fg), -2)
    protos = protos / (protos.norm(dim=-1, keepdim=True) + eps)
    anchors = anchors / (anchors.norm(dim=-1, keepdim=True) + eps)
    coords = torch.linalg.pinv(protos, rtol=1e-15).transpose(-1, -2) @ feats.flatten(-2)  # [N, L, 2, h*w]
    return (anchors.t() @ coords).unflatten(-1, feats.shape[-2:])


def cosine_correlation(query: Tensor, support: Tensor, eps: float = 1e-5) -> Tensor:
    """Correlation of every query position with every support position, map by map.

    hsnet ``model/base/correlation.py`` ``Correlation.multilayer_correlation`` (one group): the
    cosine similarity of the feature vectors (each divided by its norm plus ``eps``), negative values
    set to zero.

    Args:
        query: [N, L, C, ha, wa] query maps.
        support: [N, L, C, hb, wb] (masked) support maps.

    Returns:
        [N, L, ha, wa, hb, wb] correlations.
    """
    q = query.flatten(-2)
    s = support.flatten(-2)
    q = q / (q.norm(dim=-2, keepdim=True) + eps)
    s = s / (s.norm(dim=-2, keepdim=True) + eps)
    corr = (q.transpose(-1, -2) @ s).clamp(min=0)
    return corr.reshape(*query.shape[:2], *query.shape[-2:], *support.shape[-2:])


def resize_query_dims(corr: Tensor, size: Tuple[int, int]) -> Tensor:
    """Bilinear resize (aligned corners) of the query dimensions of a 4D correlation.

    hsnet ``model/learner.py`` ``HPNLearner.interpolate_support_dims``, which, despite its name,
    resizes the query dimensions (ha, wa): the squeezing blocks stride only the support ones.

    Args:
        corr: [N, C, ha, wa, hb, wb].
        size: the new (ha, wa).

    Returns:
        [N, C, size[0], size[1], hb, wb].
    """
    n, c, ha, wa, hb, wb = corr.shape
    x = corr.permute(0, 4, 5, 1, 2, 3).reshape(n * hb * wb, c, ha, wa)
    x = F.interpolate(x, size, mode='bilinear', align_corners=True)
    return x.reshape(n, hb, wb, c, *size).permute(0, 3, 4, 5, 1, 2)


def vote_shots(shot_logits: Tensor) -> Tensor:
    """K-shot prediction of HSNet and PATNet: a vote of the per-shot argmax masks.

    hsnet ``model/hsnet.py`` ``HypercorrSqueezeNetwork.predict_mask_nshot`` (and patnet's, the same
    rule): each shot predicts the query alone; a pixel is foreground when its number of foreground
    votes is at least half the largest number any pixel of that query got (at least one). One shot
    gives its argmax.

    Args:
        shot_logits: [B, K, 2, H, W] logits of each shot.

    Returns:
        [B, H, W] int64 prediction.
    """
    votes = shot_logits.argmax(2)
    if votes.shape[1] == 1:
        return votes[:, 0]
    count = votes.sum(1)
    most = count.flatten(1).amax(1).clamp(min=1)[:, None, None]
    return (2 * count >= most).long()  # count / most >= 0.5, in integers
