from .ifa_resnet import IFABottleneck, IFAResNet
from .multilayer_resnet import MultiLayerResNet

__all__ = ['IFABottleneck', 'IFAResNet', 'MultiLayerResNet']
