"""Inference outside the Runner: segment query images given a support set; build a model as the runner does."""
from .inference import FewShotInferencer, SupportSet, init_model

__all__ = ['FewShotInferencer', 'SupportSet', 'init_model']
