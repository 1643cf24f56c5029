"""A test-only vis backend that records every ``add_image`` call as a JSON line in ``save_dir/images.jsonl``."""
import json
import os
import os.path as osp

from mmengine.visualization import BaseVisBackend
from mmseg.registry import VISBACKENDS


@VISBACKENDS.register_module()
class RecordingVisBackend(BaseVisBackend):
    """Like a TensorBoard or W&B backend, but writes ``{"name", "shape", "step"}`` per picture."""

    def __init__(self, save_dir: str, record_file: str = None) -> None:
        super().__init__(save_dir)
        self.record_file = record_file

    @property
    def experiment(self):
        return self

    def _init_env(self) -> None:
        pass

    def add_image(self, name: str, image, step: int = 0, **kwargs) -> None:
        path = self.record_file or osp.join(self._save_dir, 'images.jsonl')
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'a') as f:
            f.write(json.dumps(dict(name=name, shape=list(image.shape), step=step)) + '\n')
