# Target domain: Deepglobe satellite land cover, 6 classes, 600 test episodes.
_base_ = './fewshot_target.py'
test_dataloader = dict(dataset=dict(type='DeepglobeDataset'))
