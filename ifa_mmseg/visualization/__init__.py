from .episode_panel import episode_panel, overlay

__all__ = ['episode_panel', 'overlay']
