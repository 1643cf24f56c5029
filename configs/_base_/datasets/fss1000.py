# Target domain: FSS-1000, the 240 classes of fss_split, every image once as a query.
_base_ = './fewshot_target.py'
test_dataloader = dict(dataset=dict(type='FSS1000Dataset'))
