# IFA adaptation (ifa.py): the source schedule at lr 5e-4 (Chest X-ray 5e-6), 20 epochs (the milestones
# are reached only by FSS-1000, 44 steps per epoch). Pseudo-query episodes on the tested target: the
# resolver fills in its dataset, the support pool (adaptation_labels) and the queries it avoids (test_seeds).
_base_ = './source_20e.py'
optim_wrapper = dict(optimizer=dict(lr=5e-4))
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='fewshot_collate'),
    dataset=dict(type='IFAAdaptationDataset', seed=0))
