# toy_config.py for 6 iterations of 1 episode per process (global batch 2 on 2 processes), checkpoints
# every 2, with the fault hook (inactive unless IFA_FAULT is set; see fault_hook.py).
_base_ = ['./toy_config.py']
custom_imports = dict(imports=['ifa_mmseg', 'tests.helpers.toy_episodes', 'tests.helpers.fault_hook'],
                      allow_failed_imports=False)
train_dataloader = dict(batch_size=1)
train_cfg = dict(max_iters=6)
custom_hooks = [dict(type='FaultAtIterHook')]
