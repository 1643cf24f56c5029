# IFA adaptation on Deepglobe from the PASCAL source model of the same shot, then evaluation.
_base_ = [
    '../_base_/default_runtime.py', '../_base_/models/ifa_r50.py', '../_base_/datasets/deepglobe.py',
    '../_base_/schedules/adapt_20e.py'
]
source_config = 'configs/ifa/pascal_source_{shot}shot.py'  # load_from: its last checkpoint
model = dict(backbone=dict(init_cfg=None))  # every weight comes from load_from
