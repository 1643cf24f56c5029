# IFA head on mmpretrain's DINOv2 ViT-B/14 (768 channels, stride 14); see ifa_dinov2_vits14.py for the
# feature (last block, final norm), the 392-px size and the freezing (blocks 11-12 and the final norm train).
# mmpretrain names this arch 'base' (it has no 'dinov2-base'); its converted file is
# vit-base-p14_dinov2-pre_3rdparty_20230426-ba246503.pth, or convert the original release with
#   python tools/model_converters/dinov2_to_mmpretrain.py dinov2_vitb14_pretrain.pth \
#       checkpoints/dinov2_vitb14_mmpretrain.pth
_base_ = './ifa_dinov2_vits14.py'
model = dict(
    backbone=dict(
        arch='base',
        init_cfg=dict(checkpoint='checkpoints/dinov2_vitb14_mmpretrain.pth')))
