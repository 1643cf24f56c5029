from .ifa_resnet import BottleneckNoOutReLU, IFAResNet

__all__ = ['BottleneckNoOutReLU', 'IFAResNet']
