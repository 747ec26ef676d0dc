"""The one training loop: batches over items with their observed labels, callbacks, checkpoints.

Imports :mod:`crowdlearn.nn` and :class:`~crowdlearn.annotations.Annotations` only.
"""

from crowdlearn.train.batching import (
    AnnotatorMix,
    Batch,
    Inputs,
    ValidationSet,
    item_batches,
    make_batch,
    shard_batches,
)
from crowdlearn.train.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochPrinter,
    LambdaSchedule,
    MarginRecorder,
    ProgressBar,
)
from crowdlearn.train.checkpoint import load_checkpoint, save_checkpoint
from crowdlearn.train.history import History
from crowdlearn.train.trainer import Schedule, Trainer, TrainingDivergedError, resolve_device
from crowdlearn.train.transforms import BatchTransform, InputMixup, View

__all__ = [
    "AnnotatorMix",
    "Batch",
    "BatchTransform",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EpochPrinter",
    "History",
    "InputMixup",
    "Inputs",
    "LambdaSchedule",
    "MarginRecorder",
    "ProgressBar",
    "Schedule",
    "Trainer",
    "TrainingDivergedError",
    "ValidationSet",
    "View",
    "item_batches",
    "load_checkpoint",
    "make_batch",
    "resolve_device",
    "save_checkpoint",
    "shard_batches",
]
