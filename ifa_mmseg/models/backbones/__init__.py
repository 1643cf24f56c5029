from .ifa_resnet import IFABottleneck, IFAResNet

__all__ = ['IFABottleneck', 'IFAResNet']
