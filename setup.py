"""Map the repository's top-level folders into the single import root ``zoo``.

The top level (zoo/ kernels/ domains/ recipes/ model_cards/) is fixed by the
design; only this mapping makes them ``zoo.kernels``, ``zoo.domains``,
``zoo.recipes`` and ``zoo.model_cards``. Everything else lives in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "zoo": "zoo",
    "zoo.kernels": "kernels",
    "zoo.domains": "domains",
    "zoo.recipes": "recipes",
    "zoo.model_cards": "model_cards",
}


def _packages_and_dirs():
    packages, package_dir = [], {}
    for package, folder in FOLDERS.items():
        package_dir[package] = folder
        packages.append(package)
        for sub in find_packages(where=folder):
            packages.append(f"{package}.{sub}")
            package_dir[f"{package}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return packages, package_dir


packages, package_dir = _packages_and_dirs()

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        # trained snapshots shipped until the Hub organisation exists (config.json, model.safetensors, README.md)
        "zoo": ["weights/*/*"],
        "zoo.recipes": ["**/*.yaml"],
        "zoo.model_cards": ["*.md"],
        "zoo.kernels": ["**/README.md", "README.md"],
    },
    include_package_data=False,
)
