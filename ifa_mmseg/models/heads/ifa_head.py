"""IFA head: SSP prototypes, bidirectional few-shot prediction (BFP), iterations."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from ..utils.memory import cpu_chunk_size
from .prototypes import (SELF_SUPPORT_IMPLS, Tokens, masked_average_pooling, to_tokens, token_cosine_logits,
                         token_prototype, token_self_support, tokens_to_map)

# IFA fine-tuning loss (official ifa.py); source training zeroes the iteration 2/3 terms.
IFA_LOSS_WEIGHTS = dict(q_refine=1.0, q1=1.0, q_self=1.0, s_self=0.2, s1=0.4, q2=0.1, s2=0.1, q3=0.1, s3=0.1)


def grouped_cross_entropy(logits: Tensor, target: Tensor, group: Tensor, num_groups: int,
                          ignore_index: int = 255) -> Tensor:
    """Cross-entropy averaged over the labelled pixels of each group of rows.

    Args:
        logits: [N, 2, H, W].
        target: [N, H, W] labels.
        group: [N] group (e.g. episode) of every row, in ``0 .. num_groups - 1``.
        num_groups: G.
        ignore_index: label of pixels that count nowhere.

    Returns:
        [G] means; a group whose rows are all ignored gives 0. With one group (training) this is
        ``F.cross_entropy(logits, target, ignore_index=ignore_index)``, by the same kernel.
    """
    labelled = target != ignore_index
    if num_groups == 1:  # one sum over all rows: the fused kernel, ~1.5x faster on CPU than per-row sums
        return (F.cross_entropy(logits, target, ignore_index=ignore_index, reduction='sum')
                / labelled.count_nonzero().clamp(min=1))[None]
    pixel = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction='none').flatten(1).sum(1)
    count = labelled.flatten(1).sum(1)  # integers: exact whatever the logits' dtype
    return (pixel.new_zeros(num_groups).index_add(0, group, pixel)
            / count.new_zeros(num_groups).index_add(0, group, count).clamp(min=1))


@MODELS.register_module()
class IFAHead(BaseModule):
    """Parameter-free head of IFA (CVPR 2024) on top of SSP (ECCV 2022).

    Iteration 1 predicts the query from the support prototypes, refines them with
    the query's own confident pixels (SSP), optionally refines once more, then
    predicts each support image from the query-updated prototypes (the backward
    direction of BFP). Iterations 2.. restart from the support-side prototypes.
    Only the query side of iteration 1 is needed at inference.

    Output keys (logits [*, 2, H, W], channel 1 foreground): query rows ``q_refine``,
    ``q1``, ``q_self``, ``q2``, ``q3`` ([B, ...]); support rows ``s_self``, ``s1``,
    ``s2``, ``s3`` ([K*B, ...], shot-major: row ``k*B + b``).

    Args:
        scale: cosine logit scale.
        fg_thresh, bg_thresh: SSP probability thresholds.
        topk: SSP fallback selection size.
        local_temperature: softmax multiplier of the per-pixel background prototypes.
        map_eps: masked-average-pooling eps.
        fg_mix: weights of (input prototype, SSP foreground) in the updated foreground.
        bg_mix: weights of (global, per-pixel) SSP background in the updated background.
        refine: run the refinement step of iteration 1 (``q_refine``).
        refine_mix: weights of (input, first update, second update) prototypes in the refinement.
        refine_logit_mix: weights of (refined, first) logits in ``q_refine``.
        num_iterations: BFP iterations available for training.
        loss_weights: weight per output key; outputs and iterations that no nonzero
            weight needs are not computed.
        support_order: ``'correct'`` pairs support rows with their own episode;
            ``'official'`` reproduces the official K>1 training order (prototypes
            repeated episode-major against shot-major support rows, as the official
            ``model/IFA_matching.py`` ``IFA_MatchingNet.iter_BFP``; see docs/differences.md).
        ignore_index: label ignored by the cross-entropy.
        align_corners: of the bilinear upsampling to the image size.
        self_support_impl: how the per-pixel SSP background prototypes attend over the
            selected pixels. ``'select'``: image by image over exactly the selected pixels
            (``nonzero``, which waits for the host on a GPU; the fastest on CPU).
            ``'masked'``: all images of the step at once over all pixels, the selection as
            an attention mask (static shapes, no host synchronisation; for accelerators).
            ``'auto'`` (default): ``'masked'`` on CUDA, ``'select'`` elsewhere. The two
            compute the same function (equal within float rounding); the selections and
            the top-k fallback are the same in both.
    """

    def __init__(self,
                 scale: float = 10.0,
                 fg_thresh: float = 0.7,
                 bg_thresh: float = 0.6,
                 topk: int = 12,
                 local_temperature: float = 2.0,
                 map_eps: float = 1e-5,
                 fg_mix: Sequence[float] = (0.5, 0.5),
                 bg_mix: Sequence[float] = (0.3, 0.7),
                 refine: bool = True,
                 refine_mix: Sequence[float] = (0.5, 0.2, 0.3),
                 refine_logit_mix: Sequence[float] = (0.7, 0.3),
                 num_iterations: int = 3,
                 loss_weights: Optional[Dict[str, float]] = None,
                 support_order: str = 'correct',
                 ignore_index: int = 255,
                 align_corners: bool = True,
                 self_support_impl: str = 'auto',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if support_order not in ('correct', 'official'):
            raise ValueError(f"support_order must be 'correct' or 'official', got {support_order!r}")
        if self_support_impl not in SELF_SUPPORT_IMPLS:
            raise ValueError(f'self_support_impl must be one of {SELF_SUPPORT_IMPLS}, got {self_support_impl!r}')
        self.num_classes = 2  # background and foreground logits (mmseg's init_model reads it without dataset_meta)
        self.scale = scale
        self.ssp_cfg = dict(fg_thresh=fg_thresh, bg_thresh=bg_thresh, topk=topk, temperature=local_temperature,
                            impl=self_support_impl)
        self.self_support_impl = self_support_impl
        self.map_eps = map_eps
        self.fg_mix, self.bg_mix = tuple(fg_mix), tuple(bg_mix)
        self.refine = refine
        self.refine_mix, self.refine_logit_mix = tuple(refine_mix), tuple(refine_logit_mix)
        self.num_iterations = num_iterations
        self.support_order = support_order
        self.ignore_index = ignore_index
        self.align_corners = align_corners
        self.output_keys = self._all_keys(refine, num_iterations)
        self.loss_weights = dict(IFA_LOSS_WEIGHTS if loss_weights is None else loss_weights)
        unknown = set(self.loss_weights) - set(self.output_keys)
        if unknown:
            raise ValueError(f'loss_weights has keys {sorted(unknown)} that this head does not produce; '
                             f'valid keys: {self.output_keys}')

    @staticmethod
    def _all_keys(refine: bool, num_iterations: int) -> Tuple[str, ...]:
        keys = (['q_refine'] if refine else []) + ['q1', 'q_self', 's_self', 's1']
        for i in range(2, num_iterations + 1):
            keys += [f'q{i}', f's{i}']
        return tuple(keys)

    def _needs(self, key: str) -> bool:
        return self.loss_weights.get(key, 0) != 0

    def _train_iterations(self) -> int:
        """The last iteration whose outputs carry a loss weight (at least 1)."""
        last = 1
        for i in range(2, self.num_iterations + 1):
            if self._needs(f'q{i}') or self._needs(f's{i}'):
                last = i
        return last

    # ------------------------------------------------------------------ support rows
    def _to_support_rows(self, x: Tensor, shot: int) -> Tensor:
        """[B, ...] per-episode tensor -> [K*B, ...] aligned with the support rows."""
        if shot == 1:
            return x
        if self.support_order == 'official':
            return x.repeat_interleave(shot, dim=0)
        return x.repeat(shot, *([1] * (x.dim() - 1)))

    def _from_support_rows(self, x: Tensor, shot: int) -> Tensor:
        """[K*B, ...] support-row tensor -> [B, ...] mean over each episode's shots."""
        if shot == 1:
            return x
        if self.support_order == 'official':
            return x.unflatten(0, (-1, shot)).mean(1)
        return x.unflatten(0, (shot, -1)).mean(0)

    # ------------------------------------------------------------------ one BFP iteration
    def _logits(self, feat: Tokens, fp: Tensor, bp: Tensor) -> Tensor:
        return token_cosine_logits(feat.unit, fp, bp, self.scale)

    def _update(self, fp: Tensor, feat: Tokens, logits: Tensor) -> Tuple[Tensor, Tensor]:
        """Mix ``fp`` with the SSP foreground; background purely from SSP."""
        ssfp, ssbp, asbp = token_self_support(feat, logits, **self.ssp_cfg)
        return fp * self.fg_mix[0] + ssfp * self.fg_mix[1], ssbp * self.bg_mix[0] + asbp * self.bg_mix[1]

    def bfp_iteration(self, fp: Tensor, bp: Tensor, feat_q: Tokens, feat_s: Optional[Tokens],
                      refine: bool) -> Dict[str, Tensor]:
        """One BFP iteration at feature resolution, in the token layout (see ``prototypes``).

        Args:
            fp: [B, 1, C] foreground prototype.
            bp: [B, 1, C] or [B, L, C] background prototype.
            feat_q: query features, B rows.
            feat_s: shot-major support features, K*B rows, or None to skip the support
                direction.
            refine: also compute the refined query logits.

        Returns:
            ``q`` [B, L, 2], ``q_refine`` (if refine), and with ``feat_s``: ``s``
            [K*B, L, 2] plus the support-side prototypes ``fp``, ``bp`` ([B, ...])
            for the next iteration.
        """
        out: Dict[str, Tensor] = {}
        fp1, bp1 = self._update(fp, feat_q, self._logits(feat_q, fp, bp))
        out['q'] = q1 = self._logits(feat_q, fp1, bp1)
        if refine:
            fp2, bp2 = self._update(fp, feat_q, q1)
            a, b, c = self.refine_mix
            fp2 = fp * a + fp1 * b + fp2 * c
            bp2 = bp * a + bp1 * b + bp2 * c
            out['q_refine'] = self._logits(feat_q, fp2, bp2) * self.refine_logit_mix[0] + q1 * self.refine_logit_mix[1]
        if feat_s is not None:
            shot = feat_s.raw.shape[0] // feat_q.raw.shape[0]
            fp_s, bp_s = self._update(
                self._to_support_rows(fp, shot), feat_s,
                self._logits(feat_s, self._to_support_rows(fp1, shot), self._to_support_rows(bp1, shot)))
            out['s'] = self._logits(feat_s, fp_s, bp_s)
            out['fp'] = self._from_support_rows(fp_s, shot)
            out['bp'] = self._from_support_rows(bp_s, shot)
        return out

    # ------------------------------------------------------------------ forward
    def _self_logits(self, feat: Tensor, tokens: Tokens, mask: Tensor) -> Tensor:
        """Token logits of ``feat`` ([N, C, h, w], ``tokens``) against its own ground-truth prototypes."""
        fg = masked_average_pooling(feat, (mask == 1).to(feat.dtype), self.map_eps)
        bg = masked_average_pooling(feat, (mask == 0).to(feat.dtype), self.map_eps)
        return self._logits(tokens, fg[:, None], bg[:, None])

    def forward(self, feat_q: Tensor, feat_s: Tensor, support_masks: Tensor,
                query_mask: Optional[Tensor] = None, size: Optional[Tuple[int, int]] = None,
                training: bool = False) -> Dict[str, Tensor]:
        """Few-shot logits for a batch of episodes.

        On CPU the episodes go through in chunks whose support features stay below
        glibc's mmap threshold (:func:`cpu_chunk_size`; at 400x400, 3 one-shot episodes),
        so that the head's many feature-sized tensors come from the heap instead of
        page-faulting. Episodes are independent, except that ``support_order='official'``
        mixes them when K > 1; then the batch stays whole.

        Args:
            feat_q: [B, C, h, w] query features.
            feat_s: [K*B, C, h, w] support features, shot-major.
            support_masks: [K*B, H, W] binary support masks, shot-major.
            query_mask: [B, H, W] query labels, needed for ``q_self`` in training.
            size: (H, W) of the returned logits; defaults to the mask size.
            training: compute the training outputs (else only ``q_refine``/``q1``).

        Returns:
            Logits [*, 2, H, W] by output key.
        """
        size = tuple(support_masks.shape[-2:]) if size is None else size
        b, shot = feat_q.shape[0], feat_s.shape[0] // feat_q.shape[0]
        step = b
        if feat_s.device.type == 'cpu' and (shot == 1 or self.support_order == 'correct'):
            step = cpu_chunk_size(shot * feat_s[0].numel() * feat_s.element_size())
        if step >= b:
            return self._forward(feat_q, feat_s, support_masks, query_mask, size, training)

        def support_rows(x: Tensor) -> List[Tensor]:
            return [part.flatten(0, 1) for part in x.unflatten(0, (shot, b)).split(step, 1)]

        query_masks = [None] * b if query_mask is None else query_mask.split(step)
        parts = [self._forward(*args, size, training) for args in zip(
            feat_q.split(step), support_rows(feat_s), support_rows(support_masks), query_masks)]
        # support outputs are shot-major: interleave the chunks' rows back
        return {k: (torch.cat([p[k].unflatten(0, (shot, -1)) for p in parts], 1).flatten(0, 1) if k[0] == 's'
                    else torch.cat([p[k] for p in parts])) for k in parts[0]}

    def _forward(self, feat_q: Tensor, feat_s: Tensor, support_masks: Tensor, query_mask: Optional[Tensor],
                 size: Tuple[int, int], training: bool) -> Dict[str, Tensor]:
        """:meth:`forward` on one chunk of episodes."""
        fg_k, bg_k = self.shot_prototypes(feat_s, support_masks)
        fp, bp = self.fuse_shots(fg_k, bg_k, feat_q.shape[0])
        if not training:
            return self.predict_query(feat_q, fp, bp, size)

        tokens_q, tokens_s = to_tokens(feat_q), to_tokens(feat_s)
        fp, bp = token_prototype(fp), token_prototype(bp)
        outs: Dict[str, Tensor] = {}
        last = self._train_iterations()
        for i in range(1, last + 1):
            with_support = i < last or self._needs(f's{i}')
            it = self.bfp_iteration(fp, bp, tokens_q, tokens_s if with_support else None,
                                    refine=self.refine and i == 1)
            outs[f'q{i}'] = it['q']
            if i == 1 and self.refine:
                outs['q_refine'] = it['q_refine']
            if with_support:
                outs[f's{i}'] = it['s']
                fp, bp = it['fp'], it['bp']
        if self._needs('s_self'):
            outs['s_self'] = self._logits(tokens_s, fg_k[:, None], bg_k[:, None])
        if self._needs('q_self'):
            if query_mask is None:
                raise ValueError('IFAHead needs query_mask in training to compute q_self')
            outs['q_self'] = self._self_logits(feat_q, tokens_q, query_mask)
        return self._resize(outs, feat_q.shape[-2:], size)

    def shot_prototypes(self, feat_s: Tensor, support_masks: Tensor) -> Tuple[Tensor, Tensor]:
        """Foreground and background prototypes [N, C] of N support images.

        Args:
            feat_s: [N, C, h, w] support features.
            support_masks: [N, H, W] binary masks (float or integer).
        """
        fg = masked_average_pooling(feat_s, (support_masks == 1).to(feat_s.dtype), self.map_eps)
        bg = masked_average_pooling(feat_s, (support_masks == 0).to(feat_s.dtype), self.map_eps)
        return fg, bg

    @staticmethod
    def fuse_shots(fg_k: Tensor, bg_k: Tensor, num_episodes: int) -> Tuple[Tensor, Tensor]:
        """K-shot fusion: shot-major [K*B, C] prototypes -> [B, C, 1, 1], the unweighted mean over shots."""
        return (fg_k.unflatten(0, (-1, num_episodes)).mean(0)[..., None, None],
                bg_k.unflatten(0, (-1, num_episodes)).mean(0)[..., None, None])

    def predict_query(self, feat_q: Tensor, fp: Tensor, bp: Tensor, size: Tuple[int, int]) -> Dict[str, Tensor]:
        """Inference logits of queries against given support prototypes.

        Support prototypes do not depend on the query, so a support set shared by
        many queries is pooled once (:meth:`shot_prototypes`, :meth:`fuse_shots`).

        Args:
            feat_q: [B, C, h, w] query features.
            fp, bp: [B, C, 1, 1] fused prototypes; [1, C, 1, 1] is shared by all B queries.
            size: (H, W) of the returned logits.

        Returns:
            ``q1`` and, if the head refines, ``q_refine``: logits [B, 2, H, W].
        """
        b = feat_q.shape[0]
        it = self.bfp_iteration(token_prototype(fp).expand(b, -1, -1), token_prototype(bp).expand(b, -1, -1),
                                to_tokens(feat_q), None, self.refine)
        outs = dict(q1=it['q'])
        if self.refine:
            outs['q_refine'] = it['q_refine']
        return self._resize(outs, feat_q.shape[-2:], size)

    def _resize(self, outs: Dict[str, Tensor], grid: Tuple[int, int], size: Tuple[int, int]) -> Dict[str, Tensor]:
        """Token logits on the ``grid`` (h, w) -> [N, 2, H, W] maps of ``size``, in ``output_keys`` order."""
        return {k: F.interpolate(tokens_to_map(outs[k], grid), size=size, mode='bilinear',
                                 align_corners=self.align_corners)
                for k in self.output_keys if k in outs}

    def loss(self, logits: Dict[str, Tensor], query_mask: Tensor, support_masks: Tensor,
             query_group: Optional[Tensor] = None, num_groups: int = 1) -> Dict[str, Tensor]:
        """Weighted cross-entropy per output, one ``loss_<key>`` entry each (:func:`grouped_cross_entropy`).

        Without ``query_group`` the episodes form one group (training); per-episode adaptation
        puts each episode's pseudo-episodes in a group of their own.

        Args:
            logits: output of :meth:`forward` in training, for B episodes.
            query_mask: [B, H, W] query labels.
            support_masks: [K*B, H, W] shot-major support labels.
            query_group: [B] group of every episode, in ``0 .. num_groups - 1``; a support row has its
                episode's group. ``None``: all in group 0.
            num_groups: G.

        Returns:
            ``loss_<key>``: scalars without ``query_group``; else [G] losses, entry g that of group g's
            episodes alone.
        """
        grouped = query_group is not None
        if not grouped:
            query_group = query_mask.new_zeros(query_mask.shape[0], dtype=torch.long)
        shot = support_masks.shape[0] // query_mask.shape[0]
        groups = dict(q=query_group, s=query_group.repeat(shot))
        targets = dict(q=query_mask.long(), s=support_masks.long())
        losses = {f'loss_{k}': w * grouped_cross_entropy(logits[k], targets[k[0]], groups[k[0]], num_groups,
                                                         self.ignore_index)
                  for k, w in self.loss_weights.items() if w != 0}
        return losses if grouped else {k: v[0] for k, v in losses.items()}
