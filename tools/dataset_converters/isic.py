"""Sort the ISIC 2018 Task 1 training images into class folders 1/2/3 from class_id.csv.

See ``ifa_mmseg.datasets.converters.isic``, or run with --help.
"""
import sys

from ifa_mmseg.datasets.converters.isic import main

if __name__ == '__main__':
    sys.exit(main())
