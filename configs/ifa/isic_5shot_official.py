_base_ = './isic_1shot_official.py'
shot = 5
