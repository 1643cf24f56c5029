# Official protocol, stage 1 for FSS-1000: source training on PASCAL, keeping the best epoch (from the 3rd
# on) by the official metric on the seed-0 FSS-1000 test episodes, drawn as the official code draws them.
_base_ = ['./pascal_source_1shot.py', '../_base_/datasets/fss1000.py']
selection = 'target_test'
episode_sampling = 'official'
fss_split = 'val'  # the official scripts evaluate FSS-1000 on val
