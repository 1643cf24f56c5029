"""Data structures: the few-shot data sample and a batch of them."""
from .fewshot_data_sample import (EPISODE_FIELDS, IMAGE_FIELDS, PSEUDO_QUERY_FIELDS, SUPPORT_FIELDS,
                                  FewShotDataSample, FewShotSampleList, stack_rows)

__all__ = [
    'EPISODE_FIELDS', 'IMAGE_FIELDS', 'PSEUDO_QUERY_FIELDS', 'SUPPORT_FIELDS', 'FewShotDataSample',
    'FewShotSampleList', 'stack_rows'
]
