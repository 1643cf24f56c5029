"""Inference outside the Runner: segment query images given a support set."""
from .inference import FewShotInferencer, SupportSet

__all__ = ['FewShotInferencer', 'SupportSet']
