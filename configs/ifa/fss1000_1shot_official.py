# Official IFA protocol on FSS-1000: official episode draws, adaptation supports re-drawn from the test
# pool every epoch, best epoch by the official metric on the seed-0 test episodes.
_base_ = './fss1000_1shot.py'
source_config = 'configs/ifa/pascal_source_{shot}shot_fss1000_official.py'  # load_from: its best.pth
selection = 'target_test'
adaptation_labels = 'test_pool'
episode_sampling = 'official'
fss_split = 'val'
