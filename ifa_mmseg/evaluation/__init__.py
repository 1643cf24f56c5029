from .dump_results import FewShotDumpResults, unpack_mask
from .fewshot_metric import FewShotIoUMetric, episode_counts, official_iou, standard_iou

__all__ = ['FewShotDumpResults', 'FewShotIoUMetric', 'episode_counts', 'official_iou', 'standard_iou', 'unpack_mask']
