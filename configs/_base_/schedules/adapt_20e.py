# IFA adaptation (ifa.py): same optimiser at lr 5e-4 (Chest X-ray 5e-6), 20 epochs,
# same LR milestones formula (reached only by FSS-1000, which has 44 steps per epoch).
_base_ = './source_20e.py'
optim_wrapper = dict(optimizer=dict(lr=5e-4))
custom_hooks = []
