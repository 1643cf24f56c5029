# IFA head on an mmpretrain ConvNeXt-T, features of stage 3 (384 channels, OS 16).
_base_ = './ifa_r50.py'
custom_imports = dict(imports=['ifa_mmseg', 'mmpretrain.models'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ConvNeXt',
        arch='tiny',
        out_indices=(2, ),
        drop_path_rate=0.1,
        gap_before_final_norm=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/convnext-tiny_in1k.pth',
            prefix='backbone.')))
