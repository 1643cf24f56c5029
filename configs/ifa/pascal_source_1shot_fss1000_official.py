# Official protocol, stage 1 for FSS-1000 (val split, as the official code): source training on PASCAL, keeping the best epoch
# (from the 3rd on) by the official metric on the seed-0 FSS-1000 (val split, as the official code) test episodes.
_base_ = ['./pascal_source_1shot.py', '../_base_/protocols/official_selection.py']
val_dataloader = dict(dataset=dict(type='FSS1000Dataset', split='val'))
val_evaluator = dict(official_num_classes=1000, official_class_offset=520)
train_cfg = dict(val_begin=3)  # train.py keeps only epochs >= 2 (0-based)
default_hooks = dict(checkpoint=dict(type='FewShotCheckpointHook', save_best='official.mIoU', rule='greater_equal'))
