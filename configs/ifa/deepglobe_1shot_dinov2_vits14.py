# IFA adaptation on Deepglobe from the DINOv2 ViT-S/14 PASCAL source model of the same shot, then evaluation,
# at the model's input_size (ifa_dinov2_vits14.py: 28 x 28 tokens of 14 px; the R-50 configs use 400). Another
# target: a child of this config that sets test_dataloader = dict(dataset=dict(type='ISICDataset'))
# (docs/en/user_guides/models.md, "DINOv2").
_base_ = [
    '../_base_/default_runtime.py', '../_base_/models/ifa_dinov2_vits14.py', '../_base_/datasets/deepglobe.py',
    '../_base_/schedules/adapt_20e.py'
]
custom_imports = dict(imports=['ifa_mmseg', 'mmpretrain.models'], allow_failed_imports=False)
source_config = 'configs/ifa/pascal_source_{shot}shot_dinov2_vits14.py'  # load_from: its last checkpoint
model = dict(backbone=dict(init_cfg=None))  # every weight comes from load_from
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadRGBImageFromFile'),
    dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=({{_base_.input_size}}, {{_base_.input_size}})),
]))
