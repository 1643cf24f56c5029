"""Check the Chest X-ray mask naming (<image stem>_mask.png); --fix applies the safe renames.

See ``ifa_mmseg.datasets.converters.chestxray``, or run with --help.
"""
import sys

from ifa_mmseg.datasets.converters.chestxray import main

if __name__ == '__main__':
    sys.exit(main())
