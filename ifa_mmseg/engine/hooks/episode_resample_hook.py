"""Tells the training dataset the epoch, so its random draws are a function of (seed, epoch, index)."""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class EpisodeResampleHook(Hook):
    """Call ``train_dataloader.dataset.set_epoch(epoch)`` before every training epoch.

    Source training (:meth:`BaseFewShotDataset.set_epoch`) draws a new episode table
    from ``seed + epoch``, as the official code reseeds its sampling every epoch; IFA
    adaptation (:meth:`IFAAdaptationDataset.set_epoch`) seeds each item's augmentations
    from (seed, epoch, index). A resumed run therefore sees the same items as an
    uninterrupted one. Needs non-persistent dataloader workers (re-forked each epoch,
    they see the new state).
    """

    priority = 'LOW'

    def before_train_epoch(self, runner) -> None:
        loader = runner.train_dataloader
        if getattr(loader, 'persistent_workers', False):
            raise ValueError('EpisodeResampleHook needs train_dataloader.persistent_workers=False')
        dataset = loader.dataset
        if not hasattr(dataset, 'set_epoch'):
            raise TypeError(f'{type(dataset).__name__} has no set_epoch: its episodes cannot follow the epoch')
        dataset.set_epoch(runner.epoch)
