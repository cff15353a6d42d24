# The other common shape of Google's CPR samples: find_packages() finds nothing, the modules are scripts.
from setuptools import find_packages, setup

REQUIRED_PACKAGES = ['scikit-learn', 'numpy']

setup(
    name='legacy_cpr',
    version='0.1',
    install_requires=REQUIRED_PACKAGES,
    packages=find_packages(),
    include_package_data=True,
    scripts=['predictor.py', 'preprocess.py'])
