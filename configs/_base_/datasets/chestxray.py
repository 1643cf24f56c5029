# Target domain: Chest X-ray lungs, 1 class, 600 test episodes.
_base_ = './fewshot_target.py'
test_dataloader = dict(dataset=dict(type='ChestXrayDataset'))
test_evaluator = dict(official_num_classes=1, official_class_offset=0, class_names=('lung', ))
train_dataloader = dict(dataset=dict(dataset=dict(type='ChestXrayDataset')))
