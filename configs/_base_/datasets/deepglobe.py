# Target domain: Deepglobe satellite land cover, 6 classes, 600 test episodes.
_base_ = './fewshot_target.py'
test_dataloader = dict(dataset=dict(type='DeepglobeDataset'))
test_evaluator = dict(official_num_classes=6, official_class_offset=0, class_names=('agriculture', 'urban', 'rangeland', 'forest', 'water', 'barren'))
train_dataloader = dict(dataset=dict(dataset=dict(type='DeepglobeDataset')))
