from setuptools import find_packages, setup

setup(
    name='ifa-mmseg',
    version='0.1.0',
    description='IFA cross-domain few-shot segmentation (CVPR 2024) for MMSegmentation 1.x',
    packages=find_packages(include=['ifa_mmseg', 'ifa_mmseg.*']),
    # shipped split lists (HSNet PASCAL-5i / FSS-1000) and ISIC class ids
    package_data={'ifa_mmseg.datasets': ['splits/*/*.txt', 'splits/*/*/*.txt', 'splits/*/*.csv']},
    python_requires='>=3.9',
    # the tested, pinned stack is in requirements.txt
    install_requires=['mmsegmentation>=1.2.2', 'mmengine>=0.10.7', 'torch>=2.0'],
)
