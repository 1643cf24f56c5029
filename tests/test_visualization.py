import numpy as np
import torch

from ifa_mmseg.visualization import episode_panel, overlay


def test_overlay_colours_only_the_mask():
    img = torch.zeros(3, 4, 4, dtype=torch.uint8)
    mask = torch.zeros(4, 4, dtype=torch.long)
    mask[0, 0] = 1
    out = overlay(img, mask, (200, 0, 0), alpha=0.5)
    assert out[0, 0].tolist() == [100, 0, 0] and out[1, 1].tolist() == [0, 0, 0]


def test_panel_layout():
    sup = torch.full((2, 3, 8, 8), 50, dtype=torch.uint8)
    masks = torch.ones(2, 8, 8, dtype=torch.long)
    q = torch.full((3, 8, 8), 100, dtype=torch.uint8)
    pred = torch.zeros(4, 4, dtype=torch.long)  # a lower-resolution prediction is resized
    panel = episode_panel(sup, masks, q, None, pred, gap=2)
    assert panel.shape == (8, 4 * 8 + 3 * 2, 3)
    assert np.all(panel[:, 8:10] == 255)                      # spacer
    assert np.all(panel[:, -8:] == 100)                       # empty prediction: bare query
    assert not np.all(panel[:, :8] == 50)                     # support mask drawn
