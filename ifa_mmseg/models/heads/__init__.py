from .ifa_head import IFAHead

__all__ = ['IFAHead']
