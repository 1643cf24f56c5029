"""Center-pivot 4D convolution (HSNet, ICCV 2021)."""
from typing import Sequence

from torch import Tensor, nn


class CenterPivotConv4d(nn.Module):
    """A 4D convolution over (query h, w, support h, w) reduced to its two center-pivot slices.

    hsnet ``model/base/conv4d.py`` ``CenterPivotConv4d``: a 2D convolution over the query dimensions
    at every support position (``conv_q``) plus a 2D convolution over the support dimensions at
    every query position (``conv_s``), each with a bias. Only the support dimensions are strided;
    ``conv_q`` runs at every ``support_stride``-th support position so that the two sums align.

    Args:
        in_channels, out_channels: channels of the 4D tensors.
        kernel_size: odd kernel size, the same in all four dimensions (padding ``kernel_size // 2``).
        support_stride: stride over the support dimensions.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, support_stride: int) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f'CenterPivotConv4d needs an odd kernel size, got {kernel_size}')
        self.support_stride = support_stride
        self.conv_q = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.conv_s = nn.Conv2d(in_channels, out_channels, kernel_size, stride=support_stride,
                                padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        """[N, C, ha, wa, hb, wb] -> [N, C', ha, wa, ceil(hb / s), ceil(wb / s)] with s = ``support_stride``."""
        n, c, ha, wa, hb, wb = x.shape
        s = self.support_stride
        pivots = x[..., ::s, ::s]
        hs, ws = pivots.shape[-2:]
        over_query = self.conv_q(pivots.permute(0, 4, 5, 1, 2, 3).reshape(n * hs * ws, c, ha, wa))
        over_query = over_query.reshape(n, hs, ws, -1, ha, wa).permute(0, 3, 4, 5, 1, 2)
        over_support = self.conv_s(x.permute(0, 2, 3, 1, 4, 5).reshape(n * ha * wa, c, hb, wb))
        over_support = over_support.reshape(n, ha, wa, -1, hs, ws).permute(0, 3, 1, 2, 4, 5)
        return over_query + over_support


def center_pivot_block(in_channels: int, out_channels: Sequence[int], kernel_sizes: Sequence[int],
                       support_strides: Sequence[int], groups: int = 4) -> nn.Sequential:
    """(4D convolution, GroupNorm, ReLU) layers in a row: hsnet ``model/learner.py``
    ``HPNLearner.__init__.make_building_block``."""
    layers = []
    for out, kernel, stride in zip(out_channels, kernel_sizes, support_strides):
        layers += [CenterPivotConv4d(in_channels, out, kernel, stride), nn.GroupNorm(groups, out),
                   nn.ReLU(inplace=True)]
        in_channels = out
    return nn.Sequential(*layers)
