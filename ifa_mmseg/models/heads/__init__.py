from .hsnet_head import HSNetHead
from .ifa_head import IFAHead
from .patnet_head import PATNetHead

__all__ = ['HSNetHead', 'IFAHead', 'PATNetHead']
