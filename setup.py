"""Which packages ship, found rather than listed (pyproject.toml holds everything else).

Every Python package under dmx/ ships, and conf/ (data, not code, kept at the top of the
repository) ships inside the package as dmx.conf with every YAML file of every config
group, so `dmx` finds its configs from any working directory. conf/experiment is a link to
experiments/, which makes `experiment=NAME` an ordinary Hydra config group.
tests/test_packaging.py builds a wheel and checks that nothing is left out.
"""

from setuptools import find_namespace_packages, find_packages, setup

CONF = ["dmx.conf", *(f"dmx.conf.{group}" for group in find_namespace_packages("conf"))]

setup(
    packages=[*find_packages(include=["dmx", "dmx.*"]), *CONF],
    package_dir={"dmx.conf": "conf"},
    package_data={package: ["*.yaml"] for package in CONF},
)
