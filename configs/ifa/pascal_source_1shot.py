# Source training on PASCAL VOC (all 20 classes), 1-shot episodes, official schedule.
# Standard protocol: no model selection on target test episodes; the last epoch is kept.
_base_ = [
    '../_base_/default_runtime.py', '../_base_/models/ifa_r50_source.py', '../_base_/datasets/pascal.py',
    '../_base_/schedules/source_20e.py'
]
