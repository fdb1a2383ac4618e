"""Any ``torch.nn.Module`` as a pinnacle component.

Importing this package does not import torch; the module is built on first use.

Example:
    >>> from pinnacle.ext.torch import TorchModel
    >>> TorchModel("lin", module_class="torch.nn:Linear", module_kwargs={"in_features": 3, "out_features": 1}).pickle_module
    False
"""

from pinnacle.ext.torch.model import TorchModel

__all__ = ["TorchModel"]
