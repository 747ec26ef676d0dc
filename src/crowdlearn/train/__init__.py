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
from crowdlearn.train.transforms import (
    BatchTransform,
    Compose,
    InputAugmentation,
    InputMixup,
    RandomCropFlip,
    View,
    random_crop_flip,
)

__all__ = [
    "AnnotatorMix",
    "Batch",
    "BatchTransform",
    "Callback",
    "Checkpoint",
    "Compose",
    "EarlyStopping",
    "EpochPrinter",
    "History",
    "InputAugmentation",
    "InputMixup",
    "Inputs",
    "LambdaSchedule",
    "MarginRecorder",
    "ProgressBar",
    "RandomCropFlip",
    "Schedule",
    "Trainer",
    "TrainingDivergedError",
    "ValidationSet",
    "View",
    "item_batches",
    "load_checkpoint",
    "make_batch",
    "random_crop_flip",
    "resolve_device",
    "save_checkpoint",
    "shard_batches",
]
