from .adaptation import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403
from .data_preprocessor import FewShotSegDataPreProcessor
from .heads import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403

__all__ = ['FewShotSegDataPreProcessor']
