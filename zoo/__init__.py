"""seqzoo: one API for long-sequence models (Hyena, Mamba, Mamba2, xLSTM, attention and hybrids).

import zoo
zoo.list_models("*dna*")
model = zoo.load("hybridna-small", pretrained=False)
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seqzoo")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from zoo.api import ModelInfo, download, info, list_models, load

__all__ = ["ModelInfo", "__version__", "download", "info", "list_models", "load"]
