"""FSDP2 over every process, as a strategy a recipe can name by ``class_path``.

Lightning's ``ModelParallelStrategy`` resolves ``data_parallel_size="auto"`` to the number of *nodes*
(its "auto" layout is data parallel across nodes, tensor parallel inside one), so pure FSDP2 on one
machine would need the device count typed into every recipe. This subclass shards over all processes
with no tensor parallelism; ``SeqTask.configure_model`` applies ``fully_shard`` per block.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import ModelParallelStrategy


class FSDP2Strategy(ModelParallelStrategy):
    """``ModelParallelStrategy`` with ``data_parallel_size`` = world size and ``tensor_parallel_size`` = 1."""

    def __init__(self, **kwargs: Any):
        for fixed in ("data_parallel_size", "tensor_parallel_size"):
            if fixed in kwargs:
                raise TypeError(f"FSDP2Strategy sets {fixed} itself; use ModelParallelStrategy to choose it")
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1, **kwargs)

    def setup_environment(self) -> None:
        """Shard over every process before the parent builds the device mesh."""
        self._data_parallel_size = self.world_size
        super().setup_environment()
