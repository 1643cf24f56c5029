"""Prepare DeepGlobe: 6x6 tiles of 408 px, the 4.8 % colour filter, per-class binary masks.

See ``ifa_mmseg.datasets.converters.deepglobe``, or run with --help.
"""
import sys

from ifa_mmseg.datasets.converters.deepglobe import main

if __name__ == '__main__':
    sys.exit(main())
