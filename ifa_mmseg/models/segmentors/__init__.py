from .ifa_segmentor import IFASegmentor

__all__ = ['IFASegmentor']
