# PATNet (ECCV 2022): HSNet with the pattern-agnostic transformation (two anchor vectors per layer group).
# The backbone starts from torchvision's ImageNet weights (IMAGENET1K_V1, what the official
# `resnet50(pretrained=True)` loads); a trained official best_model.pt converts with
#   python tools/model_converters/patnet_official_to_mmseg.py best_model.pt checkpoints/patnet_r50.pth
_base_ = './hsnet_r50.py'
model = dict(decode_head=dict(type='PATNetHead', in_channels=(512, 1024, 2048)))  # the anchors' input channels
