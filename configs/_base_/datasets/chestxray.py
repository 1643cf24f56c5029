# Target domain: Chest X-ray lungs, 1 class, 600 test episodes.
# Test: several episode seeds, both protocols; train: IFA adaptation episodes.
data_root = 'data'
# the official per-image transform: PIL RGB, mask >= 128, 400x400 (PIL bilinear / legacy nearest)
pipeline = [
    dict(type='LoadRGBImageFromFile'),
    dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=(400, 400)),
]
test_dataset = dict(type='ChestXrayDataset', data_root=data_root, shot=1, seed=0, episode_sampling='standard',
                    pipeline=pipeline)
test_dataloader = dict(
    batch_size=12,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=test_dataset)
test_evaluator = dict(
    type='FewShotIoUMetric',
    protocols=('standard', 'official'),
    # the official test.py batch (96 for 1-shot, 48 for 5-shot) and class numbering
    official_batch_size=96,
    official_num_classes=1,
    official_class_offset=0,
    class_names=('lung', ))
test_cfg = dict(type='MultiSeedTestLoop', seeds=(0, 1, 2, 3, 4))
train_dataloader = dict(
    batch_size=12,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='IFAAdaptationDataset', dataset=test_dataset, support_pool='standard', seed=0))
