from .episode_panel import episode_panel, overlay
from .local_visualizer import FewShotLocalVisualizer, episode_iou, support_ori_shapes

__all__ = ['FewShotLocalVisualizer', 'episode_iou', 'episode_panel', 'overlay', 'support_ori_shapes']
