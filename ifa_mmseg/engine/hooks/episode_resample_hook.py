"""New support draws every training epoch, as the official source training."""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class EpisodeResampleHook(Hook):
    """Regenerate the training dataset's episode table with ``seed + epoch``.

    The official code reseeds its sampling every epoch, so a query meets new supports
    each time; an episode table built once would repeat them. Epoch 0 keeps the table
    the dataset was built with. Needs non-persistent dataloader workers (they are
    re-forked each epoch and so see the new table).
    """

    priority = 'LOW'

    def before_train_epoch(self, runner) -> None:
        loader = runner.train_dataloader
        if getattr(loader, 'persistent_workers', False):
            raise ValueError('EpisodeResampleHook needs train_dataloader.persistent_workers=False')
        dataset = loader.dataset
        if not hasattr(dataset, 'generate_episodes'):
            raise TypeError(f'{type(dataset).__name__} has no episode table to resample')
        if runner.epoch == 0:
            return
        dataset.data_list = dataset.generate_episodes(dataset.seed + runner.epoch)
        if dataset.serialize_data:
            dataset.data_bytes, dataset.data_address = dataset._serialize_data()
