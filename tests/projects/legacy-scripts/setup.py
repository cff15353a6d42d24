# The shape of Google's AI Platform custom prediction routine tutorials: the modules ship as scripts.
from setuptools import setup

setup(
    name='legacy_cpr',
    version='0.1',
    scripts=['predictor.py', 'preprocess.py'])
