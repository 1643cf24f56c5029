_base_ = './deepglobe_1shot_official.py'
source_config = 'configs/ifa/pascal_source_5shot_deepglobe_official.py'
load_from = 'work_dirs/pascal_source_5shot_deepglobe_official/best.pth'
test_dataloader = dict(dataset=dict(shot=5))
train_dataloader = dict(batch_size=6, dataset=dict(dataset=dict(shot=5)))
test_evaluator = dict(official_batch_size=48)
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[1333, 2666], gamma=0.1)]
val_dataloader = dict(batch_size=6, dataset=dict(shot=5))
val_evaluator = dict(official_batch_size=6)
