# Official protocol on Deepglobe: official episode sampling, IFA supports re-drawn from the
# test pool every epoch, best epoch by the official metric on the seed-0 test episodes.
_base_ = ['./deepglobe_1shot.py', '../_base_/protocols/official_selection.py']
source_config = 'configs/ifa/pascal_source_1shot_deepglobe_official.py'
load_from = 'work_dirs/pascal_source_1shot_deepglobe_official/best.pth'
test_dataloader = dict(dataset=dict(episode_sampling='official'))
train_dataloader = dict(dataset=dict(support_pool='official', dataset=dict(episode_sampling='official')))
val_dataloader = dict(dataset=dict(type='DeepglobeDataset'))
val_evaluator = dict(official_num_classes=6)
default_hooks = dict(checkpoint=dict(type='FewShotCheckpointHook', save_best='official.mIoU', rule='greater_equal'))
