"""HSNet head: hypercorrelation of multi-layer features, squeezed by center-pivot 4D convolutions."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn

from .center_pivot_conv4d import center_pivot_block
from .hypercorrelation import cosine_correlation, group_maps, resize_mask, resize_query_dims, vote_shots

# (kernel sizes, support strides) of the squeezing blocks, deepest layer group first
# (hsnet ``model/learner.py`` ``HPNLearner.__init__``: encoder_layer4, encoder_layer3, encoder_layer2)
SQUEEZE_LAYOUT = (((3, 3, 3), (2, 2, 2)), ((5, 3, 3), (4, 2, 2)), ((5, 5, 3), (4, 4, 2)))


@MODELS.register_module()
class HSNetHead(BaseModule):
    """Head of HSNet (ICCV 2021): one support shot -> query logits.

    The masked support maps and the query maps of each layer group are correlated position by
    position (:func:`cosine_correlation`); the learner (hsnet ``model/learner.py`` ``HPNLearner``)
    squeezes each group's 4D correlation over the support dimensions, mixes the groups from the
    deepest to the shallowest, averages over the support positions and decodes a 2D map at twice the
    shallowest group's resolution.

    Args:
        num_blocks: feature maps per layer group, shallow to deep; three groups (R-50 layers 2-4:
            (4, 6, 3); R-101: (4, 23, 3)).
        channels: output channels of the three 4D layers of every block.
        groups: GroupNorm groups.
        ignore_index: label ignored by the cross-entropy. The official loss has none (its query
            masks are 0/1); with 0/1 masks both agree.
        align_corners: of the bilinear upsampling of the logits to the image size.
    """

    def __init__(self,
                 num_blocks: Sequence[int] = (4, 6, 3),
                 channels: Sequence[int] = (16, 64, 128),
                 groups: int = 4,
                 ignore_index: int = 255,
                 align_corners: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if len(num_blocks) != len(SQUEEZE_LAYOUT):
            raise ValueError(f'{type(self).__name__} correlates {len(SQUEEZE_LAYOUT)} layer groups; num_blocks '
                             f'{tuple(num_blocks)} has {len(num_blocks)}')
        self.num_classes = 2  # background and foreground logits (mmseg's init_model reads it)
        self.num_blocks = tuple(num_blocks)
        self.ignore_index = ignore_index
        self.align_corners = align_corners
        mid, last = channels[1], channels[2]
        self.squeeze = nn.ModuleList(
            center_pivot_block(n, channels, kernels, strides, groups)
            for n, (kernels, strides) in zip(self.num_blocks[::-1], SQUEEZE_LAYOUT))
        self.mix = nn.ModuleList(center_pivot_block(last, (last,) * 3, (3,) * 3, (1,) * 3, groups) for _ in range(2))
        self.decoder = nn.Sequential(
            nn.Conv2d(last, last, 3, padding=1), nn.ReLU(),
            nn.Conv2d(last, mid, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True),
            nn.Conv2d(mid, mid, 3, padding=1), nn.ReLU(),
            nn.Conv2d(mid, 2, 3, padding=1))

    def correlations(self, query_feats: Sequence[Tensor], support_feats: Sequence[Tensor],
                     support_mask: Tensor) -> List[Tensor]:
        """The hypercorrelation of one shot, deepest group first.

        hsnet ``model/hsnet.py`` ``HypercorrSqueezeNetwork.forward``: the support maps are multiplied
        by the resized mask, then correlated with the query maps.

        Args:
            query_feats: maps [B, C_l, h_l, w_l] of the queries, shallow to deep.
            support_feats: maps of the shot's support images, the same shapes.
            support_mask: [B, H, W] binary mask of the shot.

        Returns:
            Per group, deepest first: [B, L_g, h_g, w_g, h_g, w_g].
        """
        corrs = []
        for query, support in zip(self._groups(query_feats), self._groups(support_feats)):
            support = support * resize_mask(support_mask, support.shape[-2:])
            corrs.append(cosine_correlation(query, support))
        return corrs[::-1]

    def _groups(self, feats: Sequence[Tensor]) -> List[Tensor]:
        return group_maps(feats, self.num_blocks, type(self).__name__)

    def learner(self, corrs: Sequence[Tensor]) -> Tensor:
        """4D correlations of the groups, deepest first -> logits [B, 2, 2 h, 2 w] at twice the
        resolution (h, w) of the shallowest group (hsnet ``model/learner.py`` ``HPNLearner.forward``).

        The official decoder upsamples to a square of twice the width; the same for square images.
        """
        squeezed = [block(corr) for block, corr in zip(self.squeeze, corrs)]
        x = squeezed[0]
        for mix, skip in zip(self.mix, squeezed[1:]):
            x = mix(resize_query_dims(x, skip.shape[2:4]) + skip)
        return self.decoder(x.flatten(-2).mean(-1))

    def forward(self, query_feats: Sequence[Tensor], support_feats: Sequence[Tensor], support_mask: Tensor) -> Tensor:
        """Low-resolution logits [B, 2, h, w] of the queries given one support shot (see :meth:`correlations`)."""
        return self.learner(self.correlations(query_feats, support_feats, support_mask))

    def loss(self, shot_logits: Tensor, query_mask: Tensor) -> Dict[str, Tensor]:
        """``loss_ce``: the cross-entropy of every shot's logits, averaged over pixels and shots.

        hsnet ``model/hsnet.py`` ``HypercorrSqueezeNetwork.compute_objective`` (the official code trains
        1-shot only; with K shots, each counts as a 1-shot episode of the same query).

        Args:
            shot_logits: [B, K, 2, H, W] logits at the image size.
            query_mask: [B, H, W] query labels.
        """
        b, k = shot_logits.shape[:2]
        target = query_mask[:, None].expand(b, k, *query_mask.shape[1:]).flatten(0, 1).long()
        return dict(loss_ce=F.cross_entropy(shot_logits.flatten(0, 1), target, ignore_index=self.ignore_index))

    def predict_by_shots(self, shot_logits: Tensor) -> Tuple[Tensor, Tensor]:
        """The K-shot prediction (:func:`vote_shots`) and the mean of the shots' logits.

        Args:
            shot_logits: [B, K, 2, H, W] logits of each shot.

        Returns:
            Logits [B, 2, H, W] (the mean over shots, for probabilities; with K > 1 their argmax may
            differ from the vote) and the prediction [B, H, W].
        """
        return shot_logits.mean(1), vote_shots(shot_logits)
