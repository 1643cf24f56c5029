# IFA adaptation on isic from the 1-shot PASCAL source model, then evaluation (standard protocol).
_base_ = [
    '../_base_/default_runtime.py', '../_base_/models/ifa_r50.py', '../_base_/datasets/isic.py',
    '../_base_/schedules/adapt_20e.py'
]
source_config = 'configs/ifa/pascal_source_1shot.py'
load_from = 'work_dirs/pascal_source_1shot/epoch_20.pth'
model = dict(backbone=dict(init_cfg=None))  # every weight comes from load_from
