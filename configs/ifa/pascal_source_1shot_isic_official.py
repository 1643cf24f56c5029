# Official protocol, stage 1 for ISIC: source training on PASCAL, keeping the best epoch (from the 3rd
# on) by the official metric on the seed-0 ISIC test episodes, drawn as the official code draws them.
_base_ = ['./pascal_source_1shot.py', '../_base_/datasets/isic.py']
selection = 'target_test'
episode_sampling = 'official'
