# Target domain: FSS-1000, the 240 test classes, every image once as a query (official numbering: class 760 + i).
_base_ = './fewshot_target.py'
test_dataloader = dict(dataset=dict(type='FSS1000Dataset', split='test'))
test_evaluator = dict(official_num_classes=1000, official_class_offset=760, class_names=None)
train_dataloader = dict(
    dataset=dict(
        dataset=dict(type='FSS1000Dataset', split='test'),
        # every test image is a query: the labelled adaptation pool comes from the training classes
        pool_dataset=dict(type='FSS1000Dataset', data_root={{_base_.data_root}}, shot=1, split='trn',
                          pipeline={{_base_.pipeline}})))
