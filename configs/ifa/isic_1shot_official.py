# Official IFA protocol on ISIC: official episode draws, adaptation supports re-drawn from the test
# pool every epoch, best epoch by the official metric on the seed-0 test episodes.
_base_ = './isic_1shot.py'
source_config = 'configs/ifa/pascal_source_{shot}shot_isic_official.py'  # load_from: its best.pth
selection = 'target_test'
adaptation_labels = 'test_pool'
episode_sampling = 'official'
