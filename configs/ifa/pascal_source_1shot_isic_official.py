# Official protocol, stage 1 for ISIC: source training on PASCAL, keeping the best epoch
# (from the 3rd on) by the official metric on the seed-0 ISIC test episodes.
_base_ = ['./pascal_source_1shot.py', '../_base_/protocols/official_selection.py']
val_dataloader = dict(dataset=dict(type='ISICDataset'))
val_evaluator = dict(official_num_classes=3)
train_cfg = dict(val_begin=3)  # train.py keeps only epochs >= 2 (0-based)
default_hooks = dict(checkpoint=dict(type='FewShotCheckpointHook', save_best='official.mIoU', rule='greater_equal'))
