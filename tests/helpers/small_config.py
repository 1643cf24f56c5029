"""Child-config text that runs a shipped target config small: 12 episodes, 2 seeds, 64 px (format ckpt, data)."""
SMALL_TARGET = """
load_from = '{ckpt}'
data_root = '{data}'
test_episodes = 12
test_seeds = (0, 1)
test_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(pipeline=[
    dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=(64, 64))]))
"""
