# Source training on PASCAL VOC (all 20 classes) with the DINOv2 ViT-S/14 backbone: the official schedule,
# blocks 1-10 frozen, episodes at the model's input_size (ifa_dinov2_vits14.py: a multiple of the patch size 14).
_base_ = [
    '../_base_/default_runtime.py', '../_base_/models/ifa_dinov2_vits14.py', '../_base_/datasets/pascal.py',
    '../_base_/schedules/source_20e.py'
]
custom_imports = dict(imports=['ifa_mmseg', 'mmpretrain.models'], allow_failed_imports=False)
# the source-training loss (as ifa_r50_source.py)
model = dict(decode_head=dict(loss_weights=dict(_delete_=True, q_refine=1.0, q1=1.0, q_self=1.0, s_self=0.2, s1=0.4)))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadRGBImageFromFile'),
    dict(type='LoadBinaryMask', mode='label'),
    dict(type='FewShotResize', scale=({{_base_.input_size}}, {{_base_.input_size}})),
]))
