"""Ray compute backend: bulk jobs over millions of rows, on one machine or a cluster.

``pinnacle.connect(uri, compute="ray")`` (or ``db.backfill(listener, compute="ray")``)
splits a listener's pending rows into chunks and hands them to a pool of Ray actors;
each actor connects to the database, loads the model once from the artifact store and
commits its chunks through the same exactly-once path as a local drain. The model's
``compute_kwargs`` become the actors' options (``num_cpus``, ``num_gpus``, ``memory``,
``resources``...) and the pool's (``num_actors``, ``chunk_rows``); see
:data:`~pinnacle.plugins.ray.options.OPTIONS`.

Importing this module does not import ``ray``; a job does (``pip install 'pinnacle[ray]'``).

Example:
    >>> from pinnacle.plugins.ray import compute_backend
    >>> compute_backend("ray").name
    'ray'
"""

from pinnacle.plugins.ray.compute import RayCompute, compute_backend
from pinnacle.plugins.ray.options import OPTIONS

__all__ = ["RayCompute", "compute_backend", "OPTIONS"]
