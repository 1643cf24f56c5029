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
import os.path as osp
import sys


import ifa_mmseg  # noqa: F401  (safe loading, registries)
from ifa_mmseg.models import IFAResNet
from ifa_mmseg.models.utils import ConversionError, convert_official, detect_format, infer_depth
from ifa_mmseg.models.utils.weight_files import read_checked, save_converted

RELEASE = 'an official IFA/SSP weight file'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official .pth file')
    parser.add_argument('dst', help='output .pth file')
    args = parser.parse_args()

    try:
        state = read_checked(args.src, args.dst, RELEASE)
        fmt = detect_format(state)
        depth = infer_depth(state)
        converted = convert_official(state, IFAResNet(depth=depth).state_dict())
        if fmt == 'trained':
            converted = {f'backbone.{k}': v for k, v in converted.items()}
        save_converted(args.dst, converted, dict(source=osp.basename(args.src), format=fmt, depth=depth))
    except ConversionError as e:
        sys.exit(f'{args.src}: {e}')
    except ValueError as e:
        sys.exit(str(e))
    print(f'{args.src} ({fmt}, ResNet-{depth}) -> {args.dst}: {len(converted)} tensors')


if __name__ == '__main__':
    main()
