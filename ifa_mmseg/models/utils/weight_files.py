"""Reading a downloaded weight file for a converter: the checks and the safe load both converters share."""
import os
import os.path as osp
import pickle
import re
import struct
from typing import Dict

import torch
from torch import Tensor

from ...compat import safe_torch_load


def is_safetensors(path: str) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header."""
    with open(path, 'rb') as f:
        head = f.read(9)
    return len(head) == 9 and head[8:] == b'{' and 2 <= struct.unpack('<Q', head[:8])[0] <= osp.getsize(path) - 8


def check_source(src: str, release: str) -> None:
    """Raise a ValueError naming ``src`` if it is missing, empty or a safetensors file.

    Args:
        src: the file to convert.
        release: what the file should be, for messages (e.g. ``'an official IFA/SSP checkpoint'``).
    """
    if not osp.isfile(src):
        raise ValueError(f'{src}: no such file' if not osp.exists(src) else f'{src}: not a file')
    if osp.getsize(src) == 0:
        raise ValueError(f'{src}: the file is empty (0 bytes); download it again')
    if is_safetensors(src):
        raise ValueError(f'{src} is a safetensors file, not {release} (those are PyTorch .pth files written by '
                         'torch.save). Its tensors load with safetensors.torch.load_file(path); convert the .pth '
                         'file of the release instead')


def check_destination(src: str, dst: str) -> None:
    """Raise a ValueError naming the path if ``dst`` cannot be written or is the source."""
    folder = osp.dirname(osp.abspath(dst))
    if not osp.isdir(folder):
        raise ValueError(f'cannot write {dst}: the folder {folder} does not exist')
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f'cannot write {dst}: no write permission in {folder}')
    if osp.isdir(dst):
        raise ValueError(f'cannot write {dst}: it is a folder')
    if osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst):
        raise ValueError(f'{dst} is the source file {src}: give another output path')
    if osp.exists(dst) and not os.access(dst, os.W_OK):
        raise ValueError(f'cannot write {dst}: no write permission')


def load_tensors(src: str, release: str) -> Dict[str, Tensor]:
    """The tensors of ``src`` (unwrapped from ``state_dict`` / ``model``), loaded without running code from it.

    Raises:
        ValueError: naming ``src``: not a PyTorch checkpoint, a pickle asking for code (refused as unsafe),
            or anything but a dict of tensors; ``release`` says what was expected.
    """
    try:
        state = safe_torch_load(src)
    except Exception as err:  # torch.load's errors for foreign bytes vary: UnpicklingError, KeyError, EOFError, ...
        # weights_only loading names the global (class or function) a pickle asks for
        unsafe = re.search(r'GLOBAL (\S+)', str(err)) if isinstance(err, pickle.UnpicklingError) else None
        if unsafe:
            raise ValueError(f'{src}: refused: the file holds non-tensor objects ({unsafe.group(1)}), and loading '
                             f'them could run code from it, which is unsafe. {release} holds tensors only; get the '
                             'file from the official release') from None
        raise ValueError(f'{src}: not a PyTorch checkpoint (a torch.save .pth file); reading it failed with '
                         f'{type(err).__name__}') from None
    for wrapper in ('state_dict', 'model'):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict):
        raise ValueError(f'{src}: holds a {type(state).__name__}, not a state dict (a dict of tensors)')
    other = next((k for k, v in state.items() if not isinstance(v, Tensor)), None)
    if other is not None:
        raise ValueError(f'{src}: entry {other!r} is a {type(state[other]).__name__}, not a tensor; is this '
                         f'{release}?')
    return state


def read_checked(src: str, dst: str, release: str) -> Dict[str, Tensor]:
    """:func:`check_source`, :func:`check_destination` (before anything is loaded), then :func:`load_tensors`."""
    check_source(src, release)
    check_destination(src, dst)
    return load_tensors(src, release)


def save_converted(dst: str, state_dict: Dict[str, Tensor], meta: dict) -> None:
    """``torch.save(dict(state_dict, meta), dst)``; a ValueError naming ``dst`` if it cannot be written."""
    try:
        torch.save(dict(state_dict=state_dict, meta=meta), dst)
    except (OSError, RuntimeError) as err:
        raise ValueError(f'cannot write {dst}: {err}') from None
