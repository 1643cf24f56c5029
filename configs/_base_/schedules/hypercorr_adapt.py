# Our adaptation schedule for HSNet/PATNet, not an official one (PATNet tests the source model on the target,
# adaptation_labels='none'): the head trained with its own loss on IFA's pseudo-query episodes of the tested
# target (adaptation_labels='pool' or 'test_pool'), with PATNet's optimizer: Adam lr 1e-3, constant, 20 epochs.
_base_ = './adapt_20e.py'
optim_wrapper = dict(optimizer=dict(_delete_=True, type='Adam', lr=1e-3))
param_scheduler = []
