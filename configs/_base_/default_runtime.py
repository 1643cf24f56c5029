default_scope = 'mmseg'
custom_imports = dict(imports=['ifa_mmseg'], allow_failed_imports=False)
# FewShotRunner resolves the facts and protocol below into the whole config (ifa_mmseg/engine/protocol.py);
# mmseg's own tools/train.py and tools/test.py build it too, through runner_type.
runner_type = 'FewShotRunner'

# The run's facts: every dataset, loader, metric and schedule value that depends on them is derived.
data_root = 'data'
shot = 1
test_episodes = None  # None: the target's default (600; FSS-1000: every image of the split once)
test_seeds = (0, 1, 2, 3, 4)

# The evaluation protocol (docs/en/user_guides/configs.md); the official IFA protocol is
# selection='target_test', adaptation_labels='test_pool', fss_split='val' (+ episode_sampling='official').
metrics = ('standard', 'official')  # standard: HSNet/PATNet mIoU and FBIoU; official: IFA test.py's mIoU
fss_split = 'test'  # FSS-1000 split evaluated: 'test' (HSNet/PATNet) or 'val' (official IFA)
selection = 'last'  # checkpoint kept: 'last', 'heldout' (FSS-1000's other split) or 'target_test' (official)
# adaptation_labels: 'none', 'pool' (K per class, never a test query), 'test_pool' (official) or 'episode'
# (at test time, each episode adapts its own copy of the weights on its K supports only;
# docs/en/user_guides/train_test.md, "Adaptation: where the labels come from")
adaptation_labels = 'pool'
episode_sampling = 'standard'  # 'official': the official numpy call sequence, its exact episodes
# adaptation_labels='episode': a recipe of ifa_mmseg.models.adaptation.EPISODE_RECIPES (what each one does is stated
# there), any of whose keys may be stated here too (steps, queries_per_step, views, params, optimizer, engine). Chosen
# by sweeps on held-out synthetic targets (docs/en/user_guides/benchmarks.md); not tuned on any real target.
episode_adaptation = dict(recipe='light')

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='FewShotLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
