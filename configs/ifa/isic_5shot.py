_base_ = './isic_1shot.py'
shot = 5
