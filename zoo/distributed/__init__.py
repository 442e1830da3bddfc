"""Scale-out beyond data parallelism: sequence (context) parallelism of one long sequence over ranks.

See :mod:`zoo.distributed.sequence_parallel` for the scheme (state passing for recurrent mixers,
channel / head resharding for Hyena and attention) and :mod:`zoo.distributed.comm` for the
autograd-aware communication it is built on.
"""

from zoo.distributed.sequence_parallel import (
    all_reduce_gradients,
    gather_sequence,
    sequence_parallel_forward,
    sequence_parallel_model_forward,
    split_sequence,
)

__all__ = [
    "all_reduce_gradients",
    "gather_sequence",
    "sequence_parallel_forward",
    "sequence_parallel_model_forward",
    "split_sequence",
]
