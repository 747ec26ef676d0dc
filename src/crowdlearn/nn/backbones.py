"""Classifier backbones: each maps a batch of inputs to ``K`` logits (no softmax).

Each also exposes ``forward_features(x) -> (logits (B, K), representation (B, H))``, the input
of its last linear layer as the item representation (for heads that ask for it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLP", "LeNet", "SmallResNet", "paper_mlp"]


class MLP(nn.Module):
    """Fully connected network ``n_features -> hidden... -> n_classes``.

    Parameters
    ----------
    n_features : int
        Input size ``D``.
    n_classes : int
        Output size ``K``.
    hidden : sequence of int, default=(128,)
        Hidden layer sizes (empty: a linear model).
    dropout : float, default=0.5
        Dropout after every hidden activation.
    batch_norm : bool, default=False
        Batch normalization before every linear layer after the first.
    input_norm : bool, default=False
        Batch normalization of the inputs.
    affine : bool, default=True
        Whether the batch normalizations have a learned scale and shift.

    Shape: input (B, D), output (B, K).
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        *,
        hidden: Sequence[int] = (128,),
        dropout: float = 0.5,
        batch_norm: bool = False,
        input_norm: bool = False,
        affine: bool = True,
    ) -> None:
        super().__init__()
        if n_features < 1 or n_classes < 2:
            raise ValueError(f"need n_features >= 1 and n_classes >= 2, got {n_features} and {n_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        layers: list[nn.Module] = []
        if input_norm:
            layers.append(nn.BatchNorm1d(n_features, affine=affine))
        sizes = [n_features, *[int(h) for h in hidden]]
        for i in range(len(sizes) - 1):
            if batch_norm and i > 0:
                layers.append(nn.BatchNorm1d(sizes[i], affine=affine))
            layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        if batch_norm and len(sizes) > 1:
            layers.append(nn.BatchNorm1d(sizes[-1], affine=affine))
        layers.append(nn.Linear(sizes[-1], n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (B, K) and the representation (B, H): the input of the last linear layer."""
        rep: Tensor = self.net[:-1](x)
        out: Tensor = self.net[-1](rep)
        return out, rep


def paper_mlp(n_features: int, n_classes: int) -> MLP:
    """The MLP of Ibrahim et al. (ICLR 2023) for Music:

    ``BN(D, affine=False) -> Linear 128 -> ReLU -> Dropout 0.5 -> BN(128, affine=False) -> Linear K``.
    """
    return MLP(n_features, n_classes, hidden=(128,), dropout=0.5, batch_norm=True, input_norm=True, affine=False)


class LeNet(nn.Module):
    """LeNet-5 style CNN for small grayscale or colour images.

    Shape: input (B, C, H, W) with H, W >= 16 (28x28 MNIST, 32x32 CIFAR), output (B, K).
    """

    def __init__(self, n_classes: int = 10, *, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(5),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, n_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (B, K) and the representation (B, 84): the input of the last linear layer."""
        rep: Tensor = self.classifier[:-1](self.features(x))
        out: Tensor = self.classifier[-1](rep)
        return out, rep


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A small residual network (three stages of basic blocks, CIFAR-style).

    Parameters
    ----------
    n_classes : int, default=10
    in_channels : int, default=3
    width : int, default=16
        Channels of the first stage (doubled at each of the next two).
    blocks : int, default=1
        Basic blocks per stage (``blocks=3`` gives ResNet-20).

    Shape: input (B, C, H, W), output (B, K).
    """

    def __init__(self, n_classes: int = 10, *, in_channels: int = 3, width: int = 16, blocks: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        layers: list[nn.Module] = []
        cin = width
        for stage in range(3):
            cout = width * 2**stage
            for b in range(blocks):
                layers.append(_Block(cin, cout, stride=2 if (stage > 0 and b == 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (B, K) and the representation (B, C): the pooled features fed to ``fc``."""
        rep = torch.flatten(self.pool(self.stages(self.stem(x))), 1)
        out: Tensor = self.fc(rep)
        return out, rep
