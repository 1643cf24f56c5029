# Target domain: ISIC 2018 skin lesions, 3 classes, 600 test episodes.
_base_ = './fewshot_target.py'
test_dataloader = dict(dataset=dict(type='ISICDataset'))
test_evaluator = dict(official_num_classes=3, official_class_offset=0, class_names=('nevus', 'seborrheic_keratosis', 'melanoma'))
train_dataloader = dict(dataset=dict(dataset=dict(type='ISICDataset')))
