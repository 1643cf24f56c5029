"""A tiny in-memory episode dataset, so Runner tests need no files on disk."""
from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS

from .episodes import packed_episodes


@DATASETS.register_module()
class ToyEpisodeDataset(BaseDataset):
    """``num_episodes`` recipe episodes of ``shot`` supports at ``size`` px."""

    def __init__(self, num_episodes: int = 4, shot: int = 1, size: int = 64, **kwargs) -> None:
        self.num_episodes, self.shot, self.size = num_episodes, shot, size
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self):
        return [dict(idx=i) for i in range(self.num_episodes)]

    def prepare_data(self, idx):
        packed = packed_episodes(1, self.shot, self.size, seed=100 + idx)
        return dict(inputs=packed['inputs'][0], data_samples=packed['data_samples'][0])
