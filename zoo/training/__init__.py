"""The training stack: ``ZooCLI`` (LightningCLI), ``SeqTask``, resumable data loading, schedules, checkpoints.

Modules are imported where used (``from zoo.training.task import SeqTask``): importing ``zoo`` must not
import Lightning.
"""
