from .fewshot_metric import FewShotIoUMetric, episode_counts, official_iou, standard_iou

__all__ = ['FewShotIoUMetric', 'episode_counts', 'official_iou', 'standard_iou']
