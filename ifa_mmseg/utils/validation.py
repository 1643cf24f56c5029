"""Checks of configured values shared by the resolver and the components that read them."""
import numbers
from typing import Any


def is_whole(value: Any) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
