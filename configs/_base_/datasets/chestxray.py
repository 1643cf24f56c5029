# Target domain: Chest X-ray lungs, 1 class, 600 test episodes.
_base_ = './fewshot_target.py'
test_dataloader = dict(dataset=dict(type='ChestXrayDataset'))
