# IFA head on a small ResNet-18 (stem 32, widths 32-64-128, OS 8) trained from scratch:
# the CPU demo's stand-in for the ImageNet R-50.
_base_ = './ifa_r50.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNetV1c',
        depth=18,
        stem_channels=32,
        base_channels=32,
        num_stages=3,
        strides=(1, 2, 1),
        dilations=(1, 1, 2),
        out_indices=(2, ),
        contract_dilation=True))
