_base_ = './chestxray_1shot.py'
shot = 5
