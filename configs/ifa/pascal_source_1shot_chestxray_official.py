# Official protocol, stage 1 for Chest X-ray: source training on PASCAL, keeping the best epoch (from the 3rd
# on) by the official metric on the seed-0 Chest X-ray test episodes, drawn as the official code draws them.
_base_ = ['./pascal_source_1shot.py', '../_base_/datasets/chestxray.py']
selection = 'target_test'
episode_sampling = 'official'
