_base_ = './chestxray_1shot_official.py'
shot = 5
