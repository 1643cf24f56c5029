# PATNet source training on PASCAL VOC (all 20 classes, fold 4), the official recipe; the best epoch by mIoU on
# FSS-1000 val is kept (selection='heldout', PATNet's rule): work_dirs/patnet_pascal_source_1shot/best.pth.
_base_ = [
    '../_base_/default_runtime.py', '../_base_/models/patnet_r50.py', '../_base_/datasets/pascal.py',
    '../_base_/schedules/hypercorr_source.py'
]
selection = 'heldout'
train_dataloader = dict(batch_size=20)  # PATNet README; the 12 / 6 that shot derives are IFA's
