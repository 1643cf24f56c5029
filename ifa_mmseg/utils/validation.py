"""Checks of configured values shared by the resolver and the components that read them."""
import numbers
from typing import Any


def is_whole(value: Any) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_num_episodes(num_episodes: Any) -> None:
    """Raise a ValueError naming ``num_episodes`` unless it is None (the dataset's default) or a whole number > 0."""
    if num_episodes is not None and (not is_whole(num_episodes) or num_episodes <= 0):
        raise ValueError(f'num_episodes must be a whole number > 0 (or None for the default), got {num_episodes!r}')
