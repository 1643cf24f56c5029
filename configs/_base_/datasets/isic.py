# Target domain: ISIC 2018 skin lesions, 3 classes, 600 test episodes.
_base_ = './fewshot_target.py'
test_dataloader = dict(dataset=dict(type='ISICDataset'))
