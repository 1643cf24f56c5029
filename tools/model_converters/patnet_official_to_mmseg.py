#!/usr/bin/env python
"""Convert an official PATNet checkpoint (``best_model.pt`` of slei109/PATNet) to an mmseg checkpoint.

    python tools/model_converters/patnet_official_to_mmseg.py best_model.pt checkpoints/patnet_r50.pth

The output holds ``state_dict`` (``backbone.*``, ``decode_head.*`` of ``HypercorrSegmentor``) and ``meta``; it
loads strictly into configs/_base_/models/patnet_r50.py (``load_from`` or ``tools/test.py CONFIG CKPT``). An HSNet
checkpoint is refused naming its converter; a file that is not a plain dict of tensors (a pickle that would run
code) is refused unread. The destination is checked before anything is loaded.
"""
import argparse
import sys

import ifa_mmseg  # noqa: F401  (safe loading, registries)
from ifa_mmseg.models.utils import convert_hypercorr_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official best_model.pt')
    parser.add_argument('dst', help='output .pth file')
    args = parser.parse_args()
    try:
        print(convert_hypercorr_file(args.src, args.dst, 'patnet'))
    except ValueError as err:
        sys.exit(str(err))


if __name__ == '__main__':
    main()
