# Source training on PASCAL VOC (all 20 classes), official schedule; the last epoch is kept (selection='last').
_base_ = [
    '../_base_/default_runtime.py', '../_base_/models/ifa_r50_source.py', '../_base_/datasets/pascal.py',
    '../_base_/schedules/source_20e.py'
]
