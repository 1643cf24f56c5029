"""Convert official SSP/IFA weights for ifa-mmseg.

* a trained IFA checkpoint (``layer0.*`` keys) becomes a segmentor checkpoint
  (``backbone.*`` keys) for ``load_from`` / ``tools/test.py``;
* an ImageNet ``resnet50.pth`` / ``resnet101.pth`` of SSP/IFA (``conv1.*``, ``bn1.*``;
  layer4 and fc are dropped) becomes a backbone checkpoint for
  ``backbone.init_cfg=dict(type='Pretrained', checkpoint=...)``.

Every backbone weight must be filled: unknown keys, shape mismatches and missing
weights stop the conversion with a message naming the key. The source is read with
``torch.load(weights_only=True)``: a file that would need anything but tensors (code,
arbitrary objects) is refused. The destination is checked before anything is loaded.
"""
import argparse
import os
import os.path as osp
import pickle
import re
import struct
import sys
from typing import Dict

import torch
from torch import Tensor

import ifa_mmseg  # noqa: F401  (safe loading, registries)
from ifa_mmseg.compat import safe_torch_load
from ifa_mmseg.models import IFAResNet
from ifa_mmseg.models.utils import ConversionError, convert_official, detect_format, infer_depth


def is_safetensors(path: str) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header."""
    with open(path, 'rb') as f:
        head = f.read(9)
    return len(head) == 9 and head[8:] == b'{' and 2 <= struct.unpack('<Q', head[:8])[0] <= osp.getsize(path) - 8


def check_source(src: str) -> None:
    """Raise a ValueError naming ``src`` if it is missing, empty or a safetensors file."""
    if not osp.isfile(src):
        raise ValueError(f'{src}: no such file' if not osp.exists(src) else f'{src}: not a file')
    if osp.getsize(src) == 0:
        raise ValueError(f'{src}: the file is empty (0 bytes); download it again')
    if is_safetensors(src):
        raise ValueError(f'{src} is a safetensors file, not an official IFA/SSP checkpoint (those are PyTorch .pth '
                         'files written by torch.save). Its tensors load with safetensors.torch.load_file(path); '
                         'convert the official .pth file instead')


def check_destination(src: str, dst: str) -> None:
    """Raise a ValueError naming the path if ``dst`` cannot be written or is the source."""
    folder = osp.dirname(osp.abspath(dst))
    if not osp.isdir(folder):
        raise ValueError(f'cannot write {dst}: the folder {folder} does not exist')
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f'cannot write {dst}: no write permission in {folder}')
    if osp.isdir(dst):
        raise ValueError(f'cannot write {dst}: it is a folder')
    if osp.exists(dst) and osp.samefile(src, dst):
        raise ValueError(f'{dst} is the source file {src}: give another output path')
    if osp.exists(dst) and not os.access(dst, os.W_OK):
        raise ValueError(f'cannot write {dst}: no write permission')


def load_state_dict(src: str) -> Dict[str, Tensor]:
    """The tensors of an official weight file, loaded without running any code from it."""
    try:
        state = safe_torch_load(src)
    except Exception as err:  # torch.load's errors for foreign bytes vary: UnpicklingError, KeyError, EOFError, ...
        # weights_only loading names the global (class or function) a pickle asks for
        unsafe = re.search(r'GLOBAL (\S+)', str(err)) if isinstance(err, pickle.UnpicklingError) else None
        if unsafe:
            raise ValueError(f'{src}: refused: the file holds non-tensor objects ({unsafe.group(1)}), and loading '
                             'them could run code from it, which is unsafe. Official IFA/SSP weight files hold '
                             'tensors only; get the file from the official release') from None
        raise ValueError(f'{src}: not a PyTorch checkpoint (a torch.save .pth file); reading it failed with '
                         f'{type(err).__name__}') from None
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    if not isinstance(state, dict):
        raise ValueError(f'{src}: holds a {type(state).__name__}, not a state dict (a dict of tensors)')
    other = next((k for k, v in state.items() if not isinstance(v, Tensor)), None)
    if other is not None:
        raise ValueError(f'{src}: entry {other!r} is a {type(state[other]).__name__}, not a tensor; '
                         'is this an official SSP/IFA weight file?')
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official .pth file')
    parser.add_argument('dst', help='output .pth file')
    args = parser.parse_args()

    try:
        check_source(args.src)
        check_destination(args.src, args.dst)
        state = load_state_dict(args.src)
        fmt = detect_format(state)
        depth = infer_depth(state)
        converted = convert_official(state, IFAResNet(depth=depth).state_dict())
    except ConversionError as e:
        sys.exit(f'{args.src}: {e}')
    except ValueError as e:
        sys.exit(str(e))
    if fmt == 'trained':
        converted = {f'backbone.{k}': v for k, v in converted.items()}
    meta = dict(source=osp.basename(args.src), format=fmt, depth=depth)
    try:
        torch.save(dict(state_dict=converted, meta=meta), args.dst)
    except (OSError, RuntimeError) as e:
        sys.exit(f'cannot write {args.dst}: {e}')
    print(f'{args.src} ({fmt}, ResNet-{depth}) -> {args.dst}: {len(converted)} tensors')


if __name__ == '__main__':
    main()
