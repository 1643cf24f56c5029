import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
# What `mim train/test ifa_mmseg CONFIG` and mmengine's `ifa_mmseg::` config names read from
# <site-packages>/ifa_mmseg/.mim, as mmsegmentation and mmpretrain ship them.
MIM_DIRS = ('configs', 'tools')
# No released weights to index: an empty model index, by which `mim list` counts the package as an
# OpenMMLab one. `ifa_mmseg::ifa/x.py` names do not need it: ifa_mmseg resolves them (compat.py).
MODEL_INDEX = 'Import: []\n'


class BuildPyWithMim(build_py):
    """``build_py`` that also copies configs/ and tools/ into the built package as ``ifa_mmseg/.mim``.

    mmseg's ``add_mim_extension`` does the same (a copy for a wheel, a symlink for ``setup.py
    develop``). A PEP 660 editable install imports ``ifa_mmseg`` from this checkout, whose
    configs/ and tools/ are found next to the package (``ifa_mmseg.get_config_path``), so
    nothing is written into the source tree.
    """

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        mim = osp.join(self.build_lib, 'ifa_mmseg', '.mim')
        if osp.isdir(mim):
            shutil.rmtree(mim)
        for name in MIM_DIRS:
            src = osp.join(HERE, name)
            if not osp.isdir(src):
                raise FileNotFoundError(f'{src} is missing: the package data of ifa_mmseg/.mim is built from it')
            shutil.copytree(src, osp.join(mim, name),
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc', '*.pyo'))
        with open(osp.join(mim, 'model-index.yml'), 'w') as f:
            f.write(MODEL_INDEX)


setup(
    name='ifa-mmseg',
    version='0.1.0',
    description='IFA cross-domain few-shot segmentation (CVPR 2024) for MMSegmentation 1.x',
    packages=find_packages(include=['ifa_mmseg', 'ifa_mmseg.*']),
    # shipped split lists (HSNet PASCAL-5i / FSS-1000) and ISIC class ids
    package_data={'ifa_mmseg.datasets': ['splits/*/*.txt', 'splits/*/*/*.txt', 'splits/*/*.csv']},
    cmdclass={'build_py': BuildPyWithMim},
    python_requires='>=3.9',
    # Every package the code imports, bounded below by the oldest stack CI tests (requirements-min.txt
    # pins exactly these bounds; requirements.txt pins the current stack). mmcv is imported too, but an
    # mmseg environment already has one of its two distributions: the full build (`mmcv`, usually
    # installed by `mim install`, as mmsegmentation does not declare it either) or `mmcv-lite`; declaring
    # one would install it over the other. Pick one with the extras `[lite]` or `[full]`.
    install_requires=[
        'torch>=2.4.1',
        'numpy>=1.26.0',
        'mmengine>=0.10.7',
        'mmsegmentation>=1.2.2',
        'mmpretrain>=1.2.0',  # the ConvNeXt-T model config (custom_imports)
        'scipy>=1.11.4',
        'pillow>=10.0.0',
        'opencv-python>=4.8.1.78',
        'prettytable>=3.9.0',
        'tqdm>=4.65.0',
    ],
    extras_require={
        'lite': ['mmcv-lite>=2.1.0,<2.2.0'],  # tested on both stacks
        'full': ['mmcv>=2.1.0,<2.2.0'],  # mmseg 1.2.2 rejects mmcv>=2.2.0
    },
)
