"""The default training recipes of the methods (``MethodSpec.recipe``; a method without one --
Annot-Mix, Max-MIG, Union-Net A, MBEM, ds-train, ce -- trains at the base values, its best).

Each was chosen by ``benchmarks/real.py --grid defaults`` (docs/training.md and
docs/benchmarks.md, "Default recipes"): among the candidates, the best mean test accuracy under
crowd-only selection (held-out crowd-label NLL picks the epoch) over Music without truth, LabelMe
and the simulated F-SSC and control designs, 3 seeds. The first round's three candidates: the
base values (:data:`crowdlearn.nn.registry.BASE_TRAINING`), lr 1e-2 with input mixup 0.2 (and DS
init where the head has one), and the Annot-Mix/MaDL code's lr 1e-2 + cosine schedule over 50
epochs, batch 64, no weight decay (and DS init where the head has one). A second round, run for
GeoCrowdNet(F), CCEM, GeoCrowdNet(W) and TraceReg, added lr 1e-3 with a confusion lr 1e-2, DS init and
input mixup 0.2 (:data:`SLOW_DS_CLR_RECIPE`), and every candidate at ``lam=0.2`` for the methods
with a ``lam``; ``lam`` kept its default 0.01 everywhere (a method parameter, not a recipe key).
"""

from __future__ import annotations

from typing import Any

__all__ = ["COSINE_DS_RECIPE", "COSINE_RECIPE", "FAST_DS_MIXUP_RECIPE", "FAST_MIXUP_RECIPE", "SLOW_DS_CLR_RECIPE"]

#: Adam at 1e-2 with a cosine schedule over 50 epochs, batch 64, no weight decay: CrowdLayer MW and
#: VW, CrowdAR, mv-train (heads without a DS init).
COSINE_RECIPE: dict[str, Any] = {"lr": 1e-2, "schedule": "cosine", "epochs": 50, "batch_size": 64, "weight_decay": 0.0}
#: The same, confusions started at a smoothed Dawid-Skene's: Union-Net B.
COSINE_DS_RECIPE: dict[str, Any] = {**COSINE_RECIPE, "init": "ds"}
#: Adam at 1e-2 (constant) with input mixup 0.2, the other values the base ones: MaDL, CoNAL,
#: CrowdLayer VB.
FAST_MIXUP_RECIPE: dict[str, Any] = {"lr": 1e-2, "mixup": 0.2}
#: The same with DS-initialised confusions (TraceReg's first-round recipe; no method's default now).
FAST_DS_MIXUP_RECIPE: dict[str, Any] = {**FAST_MIXUP_RECIPE, "init": "ds"}
#: Adam at 1e-3 for the backbone and 1e-2 for the confusions, DS-initialised confusions, input
#: mixup 0.2, the other values the base ones (100 epochs, batch 128, weight decay 1e-4, constant
#: schedule): CCEM, GeoCrowdNet(F), GeoCrowdNet(W) and TraceReg.
SLOW_DS_CLR_RECIPE: dict[str, Any] = {"lr": 1e-3, "confusion_lr": 1e-2, "init": "ds", "mixup": 0.2}
