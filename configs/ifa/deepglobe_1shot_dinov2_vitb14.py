# As deepglobe_1shot_dinov2_vits14.py with DINOv2 ViT-B/14, from its PASCAL source model of the same shot.
_base_ = './deepglobe_1shot_dinov2_vits14.py'
source_config = 'configs/ifa/pascal_source_{shot}shot_dinov2_vitb14.py'  # load_from: its last checkpoint
model = dict(backbone=dict(arch='base'))  # the source model's arch; every weight comes from load_from
