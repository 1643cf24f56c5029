from .base_fewshot import FewShotSegmentor
from .hypercorr_segmentor import HypercorrSegmentor
from .ifa_segmentor import IFASegmentor

__all__ = ['FewShotSegmentor', 'HypercorrSegmentor', 'IFASegmentor']
