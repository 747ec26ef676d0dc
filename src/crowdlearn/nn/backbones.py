"""Classifier backbones: each maps a batch of inputs to ``K`` logits (no softmax).

Each also exposes ``forward_features(x) -> (logits (B, K), representation (B, H))``, the input
of its last linear layer as the item representation (for heads that ask for it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "MLP",
    "CifarResNet",
    "ImageBackbone",
    "ImageNormalize",
    "LeNet",
    "SmallResNet",
    "paper_mlp",
    "resnet18",
    "resnet34",
]

#: Per-channel mean and standard deviation of the CIFAR-10 training pixels, on the [0, 1] scale.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


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


class _ResNetBody(nn.Module):
    """A 3x3 stem (no max-pool), stages of :class:`_Block` (the first block of every stage after
    the first halves the resolution), global average pooling and one linear layer.

    ``stage_blocks[i]`` blocks of ``width * 2**i`` channels in stage ``i``. Shape: input
    (B, C, H, W), logits (B, K); the representation is the pooled features (B, width * 2**(S-1)).
    """

    def __init__(self, stage_blocks: Sequence[int], n_classes: int, in_channels: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        layers: list[nn.Module] = []
        cin = width
        for stage, count in enumerate(stage_blocks):
            cout = width * 2**stage
            for b in range(int(count)):
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


class SmallResNet(_ResNetBody):
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
        super().__init__((blocks, blocks, blocks), n_classes, in_channels, width)


class CifarResNet(_ResNetBody):
    """ResNet with basic blocks for 32x32 images (He et al., CVPR 2016, in its CIFAR form).

    A 3x3 stem convolution (stride 1, 64 channels) without max-pooling, then four stages of
    :class:`BasicBlock`-style blocks with 64, 128, 256 and 512 channels (strides 1, 2, 2, 2),
    global average pooling and one linear layer: the network of the Annot-Mix and CCC
    experiments on CIFAR-10N. :func:`resnet18` and :func:`resnet34` build the two depths.

    Parameters
    ----------
    blocks : sequence of 4 int
        Blocks per stage: (2, 2, 2, 2) is ResNet-18, (3, 4, 6, 3) ResNet-34.
    n_classes : int, default=10
    in_channels : int, default=3
    width : int, default=64
        Channels of the first stage (doubled at each next one).

    Shape: input (B, C, H, W) float, output (B, K); the representation is (B, 8 * width).
    """

    def __init__(self, blocks: Sequence[int], n_classes: int = 10, *, in_channels: int = 3, width: int = 64) -> None:
        if len(blocks) != 4 or any(int(b) < 1 for b in blocks):
            raise ValueError(f"blocks must be 4 positive counts (one per stage), got {tuple(blocks)}")
        if n_classes < 2 or width < 1:
            raise ValueError(f"need n_classes >= 2 and width >= 1, got {n_classes} and {width}")
        super().__init__(blocks, n_classes, in_channels, width)


def resnet18(n_classes: int = 10, *, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-18: :class:`CifarResNet` with (2, 2, 2, 2) blocks (11.2 M parameters at K = 10)."""
    return CifarResNet((2, 2, 2, 2), n_classes, in_channels=in_channels)


def resnet34(n_classes: int = 10, *, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-34: :class:`CifarResNet` with (3, 4, 6, 3) blocks (21.3 M parameters at K = 10)."""
    return CifarResNet((3, 4, 6, 3), n_classes, in_channels=in_channels)


class ImageNormalize(nn.Module):
    """Pixels on the [0, 255] scale (uint8, or float after mixing) to normalised float32.

    ``out[:, c] = (x[:, c] / 255 - mean[c]) / std[c]``. It is affine, so mixing raw pixels
    (mixup of uint8 images, as float) and then normalising equals normalising then mixing.

    Parameters
    ----------
    mean, std : sequence of float, default=CIFAR-10's
        Per channel, on the [0, 1] scale.

    Shape: input (B, C, H, W) uint8 or float, output (B, C, H, W) float32 (memory format kept).
    """

    def __init__(self, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__()
        if len(mean) != len(std) or any(float(s) <= 0 for s in std):
            raise ValueError(f"mean and std need one value per channel, std > 0; got {tuple(mean)} and {tuple(std)}")
        m = torch.tensor([float(v) * 255.0 for v in mean], dtype=torch.float32).view(1, -1, 1, 1)
        inv = torch.tensor([1.0 / (float(v) * 255.0) for v in std], dtype=torch.float32).view(1, -1, 1, 1)
        self.shift: Tensor
        self.inv_scale: Tensor
        self.register_buffer("shift", m, persistent=False)
        self.register_buffer("inv_scale", inv, persistent=False)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    def forward(self, x: Tensor) -> Tensor:
        c = len(self.mean)
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(f"ImageNormalize expects images of shape (B, {c}, H, W), got {tuple(x.shape)}")
        return (x.float() - self.shift) * self.inv_scale

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


class ImageBackbone(nn.Module):
    """A backbone on raw images: :class:`ImageNormalize` and then ``body``.

    Feeds uint8 images (or float pixels on the [0, 255] scale) to a backbone that expects
    normalised floats, so the same inputs serve training (with augmentation and mixup on the
    raw pixels) and prediction. The normalisation keeps the input's memory format, so a
    channels-last batch (``Trainer(channels_last=True)`` on CUDA) stays channels-last.

    Parameters
    ----------
    body : nn.Module
        Maps (B, C, H, W) float to (B, K) logits; its ``forward_features`` (when it has one)
        gives the representation.
    mean, std : sequence of float, default=CIFAR-10's

    Shape: input (B, C, H, W), output (B, K).
    """

    def __init__(
        self,
        body: nn.Module,
        *,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
    ) -> None:
        super().__init__()
        self.normalize = ImageNormalize(mean, std)
        self.body = body

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.body(self.normalize(x))
        return out

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (B, K) and the body's representation (B, H)."""
        get = getattr(self.body, "forward_features", None)
        if get is None:
            raise TypeError(f"the body {type(self.body).__name__} has no forward_features(x) -> (logits, rep)")
        logits: Tensor
        rep: Tensor
        logits, rep = get(self.normalize(x))
        return logits, rep
