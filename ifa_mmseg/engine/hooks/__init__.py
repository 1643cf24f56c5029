from .visualization_hook import FewShotVisualizationHook

__all__ = ['FewShotVisualizationHook']
