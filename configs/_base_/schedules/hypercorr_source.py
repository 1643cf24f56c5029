# Official HSNet/PATNet source training (train.py, PATNet README): Adam lr 1e-3 on every trainable parameter
# (the head: the backbone is frozen), constant LR, batch 20 (stated in the source configs), `niter` epochs
# (train.py's default, 2000) over the PASCAL episodes; the best epoch by FSS-1000 mIoU is kept, which the source
# configs state as selection='heldout'.
_base_ = './source_20e.py'
optim_wrapper = dict(optimizer=dict(_delete_=True, type='Adam', lr=1e-3))
param_scheduler = []
train_cfg = dict(max_epochs=2000)
