# Official protocol on FSS-1000 (val split, as the official code): official episode sampling,
# IFA supports re-drawn from the test pool every epoch, best epoch by the official metric on the seed-0 test episodes.
_base_ = ['./fss1000_1shot.py', '../_base_/protocols/official_selection.py']
source_config = 'configs/ifa/pascal_source_1shot_fss1000_official.py'
load_from = 'work_dirs/pascal_source_1shot_fss1000_official/best.pth'
test_dataloader = dict(dataset=dict(split='val', episode_sampling='official'))
test_evaluator = dict(official_class_offset=520)
# the official adaptation episodes are the first 520 queries of val, with supports from their own classes
train_dataloader = dict(
    dataset=dict(support_pool='official', pool_dataset=None, dataset=dict(split='val', episode_sampling='official')))
val_dataloader = dict(dataset=dict(type='FSS1000Dataset', split='val'))
val_evaluator = dict(official_num_classes=1000, official_class_offset=520)
default_hooks = dict(checkpoint=dict(type='FewShotCheckpointHook', save_best='official.mIoU', rule='greater_equal'))
