"""PATNet head: HSNet's head on features moved into a domain-agnostic space by anchor vectors."""
import math
from typing import Any, List, Sequence

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn

from .hsnet_head import HSNetHead
from .hypercorrelation import cosine_correlation, masked_prototypes, pattern_transform, resize_mask


@MODELS.register_module()
class PATNetHead(HSNetHead):
    """Head of PATNet (ECCV 2022): the pattern-agnostic transformation, then HSNet's head.

    Each layer group has two learnt anchor vectors (background, foreground; the official
    ``reference_layer1..3`` weights). Every map's support prototypes and the anchors define a linear
    map sending the prototypes onto the anchors (:func:`pattern_transform`); the query maps and the
    masked support maps are transformed by it before the correlation (patnet ``model/patnet.py``
    ``PATNetwork.forward``). The learner, loss and K-shot vote are HSNet's.

    The official test script runs no fine-tuning: ``PATNetwork.finetune_reference`` is never called,
    and its KL term reads backbone prototypes only, not the anchors, so it is not part of this head.

    Args:
        in_channels: channels of each layer group, shallow to deep (R-50 layers 2-4: 512, 1024, 2048).
        **kwargs: :class:`HSNetHead` arguments.
    """

    def __init__(self, in_channels: Sequence[int] = (512, 1024, 2048), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if len(in_channels) != len(self.num_blocks):
            raise ValueError(f'PATNetHead: in_channels {tuple(in_channels)} and num_blocks {self.num_blocks} must '
                             'name the same layer groups')
        self.in_channels = tuple(in_channels)
        # official init: kaiming_normal_(fan_in, linear) of an nn.Linear(C, 2) weight, i.e. std 1 / sqrt(C)
        self.anchors = nn.ParameterList(nn.Parameter(torch.randn(2, c) / math.sqrt(c)) for c in self.in_channels)

    def correlations(self, query_feats: Sequence[Tensor], support_feats: Sequence[Tensor],
                     support_mask: Tensor) -> List[Tensor]:
        """As :meth:`HSNetHead.correlations`, on transformed maps; the anchors receive the gradient."""
        corrs = []
        groups = zip(self._groups(query_feats), self._groups(support_feats), self.anchors, self.in_channels)
        for g, (query, support, anchors, channels) in enumerate(groups):
            if query.shape[2] != channels:
                raise ValueError(f'PATNetHead: layer group {g} has {query.shape[2]} channels, its anchors {channels} '
                                 f'(in_channels={self.in_channels})')
            mask = resize_mask(support_mask, support.shape[-2:])
            fg, bg = masked_prototypes(support, mask)
            support = support * mask
            corrs.append(cosine_correlation(pattern_transform(query, fg, bg, anchors),
                                            pattern_transform(support, fg, bg, anchors)))
        return corrs[::-1]
