"""A tiny in-memory episode dataset, so Runner tests need no files on disk."""
from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS

from .episodes import packed_episodes


@DATASETS.register_module()
class ToyEpisodeDataset(BaseDataset):
    """``num_episodes`` recipe episodes of ``shot`` supports at ``size`` px.

    Episode ``i`` of seed ``s`` is recipe episode ``1000 * s + 100 + i``; its class is
    ``i % num_classes``.
    """

    METAINFO = dict(official_num_classes=2)

    def __init__(self, num_episodes: int = 4, shot: int = 1, size: int = 64, seed: int = 0,
                 num_classes: int = 2, **kwargs) -> None:
        self.num_episodes, self.shot, self.size = num_episodes, shot, size
        self.seed, self.num_classes = seed, num_classes
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self):
        return [dict(idx=i) for i in range(self.num_episodes)]

    def prepare_data(self, idx):
        packed = packed_episodes(1, self.shot, self.size, seed=1000 * self.seed + 100 + idx)
        sample = packed['data_samples'][0]
        sample.set_metainfo(dict(episode=idx, class_id=idx % self.num_classes, episode_seed=self.seed))
        return dict(inputs=packed['inputs'][0], data_samples=sample)
