# IFA head on mmseg's ResNetV1c-101 (stem 32-32-64), truncated after stage 3, OS 8.
_base_ = './ifa_r50.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNetV1c',
        depth=101,
        num_stages=3,
        strides=(1, 2, 1),
        dilations=(1, 1, 2),
        out_indices=(2, ),
        contract_dilation=True,
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet101_v1c')))
