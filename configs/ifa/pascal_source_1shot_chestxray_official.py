# Official protocol, stage 1 for Chest X-ray: source training on PASCAL, keeping the best epoch
# (from the 3rd on) by the official metric on the seed-0 Chest X-ray test episodes.
_base_ = ['./pascal_source_1shot.py', '../_base_/protocols/official_selection.py']
val_dataloader = dict(dataset=dict(type='ChestXrayDataset'))
val_evaluator = dict(official_num_classes=1)
train_cfg = dict(val_begin=3)  # train.py keeps only epochs >= 2 (0-based)
default_hooks = dict(checkpoint=dict(type='FewShotCheckpointHook', save_best='official.mIoU', rule='greater_equal'))
