# Source training as pascal_source_1shot_dinov2_vits14.py with DINOv2 ViT-B/14 (768 channels): mmpretrain names
# this arch 'base' (it has no 'dinov2-base'). Weights: mmpretrain's converted
# vit-base-p14_dinov2-pre_3rdparty_20230426-ba246503.pth saved as the path below, or the original release with
#   python tools/model_converters/dinov2_to_mmpretrain.py dinov2_vitb14_pretrain.pth \
#       checkpoints/dinov2_vitb14_mmpretrain.pth
_base_ = './pascal_source_1shot_dinov2_vits14.py'
model = dict(backbone=dict(arch='base', init_cfg=dict(checkpoint='checkpoints/dinov2_vitb14_mmpretrain.pth')))
