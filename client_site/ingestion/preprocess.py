"""Resample an HU volume, window it three ways and crop/pad it to a fixed shape with MONAI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# (name, level, width) in HU, in channel order; docs/contracts.md section 4.
WINDOWS: tuple[tuple[str, float, float], ...] = (
    ("lung", -600.0, 1500.0),
    ("mediastinum", 40.0, 400.0),
    ("bone", 400.0, 1800.0),
)
# Axis labels (negative end, positive end) of DICOM's LPS patient space, for monai Orientation.
_LPS_LABELS = (("R", "L"), ("A", "P"), ("I", "S"))
# Array axes (slice, row, col) -> ascending z (S), rows anterior->posterior (P), cols right->left (L).
_TARGET_AXCODES = "SPL"


@dataclass(frozen=True)
class PreprocessConfig:
    """Target grid of the cached volumes (defaults sized for CPU training).

    Parameters
    ----------
    spacing_mm : tuple[float, float, float]
        Voxel spacing (z, y, x) in mm after resampling (default: (10.0, 5.0, 5.0)).
    shape : tuple[int, int, int]
        Output (D, H, W) after centred crop or zero (air) padding (default: (16, 64, 64)).
    """

    spacing_mm: tuple[float, float, float] = (10.0, 5.0, 5.0)
    shape: tuple[int, int, int] = (16, 64, 64)

    def __post_init__(self) -> None:
        if len(self.spacing_mm) != 3 or not all(float(s) > 0 for s in self.spacing_mm):
            raise ValueError(f"spacing_mm must be three positive numbers (z, y, x) in mm, got {self.spacing_mm!r}")
        if len(self.shape) != 3 or not all(int(s) == s and s > 0 for s in self.shape):
            raise ValueError(f"shape must be three positive integers (D, H, W), got {self.shape!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description, including the fixed windows, for index.json."""
        out = asdict(self)
        out["spacing_mm"] = [float(s) for s in self.spacing_mm]
        out["shape"] = [int(s) for s in self.shape]
        out["windows"] = [{"name": n, "level": lv, "width": w} for n, lv, w in WINDOWS]
        out["dtype"] = "float16"
        out["layout"] = "(window, z ascending, row anterior->posterior, col right->left)"
        return out

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> PreprocessConfig:
        """The config :meth:`to_dict` wrote (``cache/index.json["preprocess"]``); other keys are ignored.

        Raises
        ------
        ValueError
            If ``spacing_mm`` or ``shape`` is missing or malformed.
        """
        try:
            spacing = tuple(float(s) for s in payload["spacing_mm"])
            shape = tuple(int(s) for s in payload["shape"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"expected a preprocessing config with spacing_mm and shape, got {payload!r}") from e
        return cls(spacing_mm=spacing, shape=shape)  # type: ignore[arg-type]


def preprocess_volume(hu: np.ndarray, affine: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Turn a native HU volume into the cached (3, D, H, W) float16 array in [0, 1].

    See :func:`preprocess_with_affine`, which also returns the output grid.
    """
    return preprocess_with_affine(hu, affine, config)[0]


def preprocess_with_affine(hu: np.ndarray, affine: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """Turn a native HU volume into the cached (3, D, H, W) float16 array, with its voxel-to-LPS affine.

    Steps (all MONAI array transforms): ``Orientation`` to (z up, rows A->P, cols R->L),
    ``Spacing`` to ``config.spacing_mm`` (bilinear, using the series affine), one
    ``ScaleIntensityRange(clip=True)`` per window, then ``ResizeWithPadOrCrop`` to
    ``config.shape``. Padding comes after windowing so that padded voxels are 0, i.e. air in every
    window (padding in HU would give 0 HU, which is not air).

    Parameters
    ----------
    hu : np.ndarray
        (slices, rows, cols) float32 volume in HU.
    affine : np.ndarray
        (4, 4) voxel-to-LPS-mm matrix of ``hu`` (see :class:`series.OrderedSeries`).
    config : PreprocessConfig
        Target spacing and shape.

    Returns
    -------
    volume : np.ndarray
        float16 array of shape (3, *config.shape), channels in :data:`WINDOWS` order.
    affine : np.ndarray
        (4, 4) float64 map from (slice, row, col) voxel indices of ``volume`` to DICOM LPS mm. The
        resampling grid is orthogonal, so a gantry tilt (a sheared input affine) is undone.
    """
    import torch
    from monai.transforms import ScaleIntensityRange

    resampled = _resample(hu, affine, config, mode="bilinear")
    channels = [
        ScaleIntensityRange(a_min=level - width / 2, a_max=level + width / 2, b_min=0.0, b_max=1.0, clip=True)(
            resampled)
        for _, level, width in WINDOWS
    ]
    stacked = torch.cat([torch.as_tensor(c) for c in channels], dim=0)  # (3, D', H', W')
    array, out_affine = _fit(stacked, resampled, config)
    return np.clip(array.astype(np.float16), 0.0, 1.0), out_affine


def preprocess_mask(mask: np.ndarray, affine: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Map a bool mask on a series' native voxel grid onto the cached volume's (D, H, W) grid.

    The geometry is that of :func:`preprocess_with_affine` (the same ``Orientation``, ``Spacing``
    and ``ResizeWithPadOrCrop``), with nearest-neighbour resampling instead of bilinear. Point
    sampling alone would drop a lesion that lies between two output voxel centres (a 6 mm nodule
    between slices 16 mm apart), so every cache voxel that contains the centre of a native mask
    voxel is set too: the result is the union of the nearest-neighbour resampling (which fills the
    mask where the cache grid is finer than the native one) and those voxels.

    Parameters
    ----------
    mask : np.ndarray
        (slices, rows, cols) bool mask on the native grid (e.g. ``truth/masks/<accession>.npz``).
    affine : np.ndarray
        (4, 4) voxel-to-LPS-mm matrix of that grid (``native.affine`` in ``cache/index.json``).
    config : PreprocessConfig
        The cache's target spacing and shape.

    Returns
    -------
    np.ndarray
        bool array of shape ``config.shape``; empty when the lesion lies outside the cropped grid.
    """
    lesion = np.asarray(mask, dtype=bool)
    resampled = _resample(lesion.astype(np.float32), affine, config, mode="nearest")
    array, out_affine = _fit(resampled, resampled, config)
    out = array[0] > 0.5
    # Native voxel centres (slice, row, col) -> LPS mm -> cache voxel indices.
    native_ijk = np.argwhere(lesion).astype(np.float64)
    lps = native_ijk @ np.asarray(affine, dtype=np.float64)[:3, :3].T + np.asarray(affine)[:3, 3]
    to_cache = np.linalg.inv(out_affine)
    cache_ijk = np.rint(lps @ to_cache[:3, :3].T + to_cache[:3, 3]).astype(np.int64)
    inside = np.all((cache_ijk >= 0) & (cache_ijk < np.asarray(config.shape)), axis=1)
    out[tuple(cache_ijk[inside].T)] = True
    return out


def _resample(native: np.ndarray, affine: np.ndarray, config: PreprocessConfig, *, mode: str) -> Any:
    """MONAI ``Orientation`` then ``Spacing`` of a (D, H, W) array -> a (1, D', H', W') MetaTensor."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Orientation, Spacing

    if native.ndim != 3 or affine.shape != (4, 4):
        raise ValueError(f"expected a (D, H, W) volume and a (4, 4) affine, got {native.shape} and {affine.shape}")
    image = MetaTensor(torch.from_numpy(np.ascontiguousarray(native, dtype=np.float32))[None],
                       affine=torch.as_tensor(affine, dtype=torch.float64))  # (1, D, H, W)
    oriented = Orientation(axcodes=_TARGET_AXCODES, labels=_LPS_LABELS)(image)
    return Spacing(pixdim=config.spacing_mm, mode=mode, padding_mode="border", dtype=np.float32)(oriented)


def _fit(image: Any, resampled: Any, config: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """MONAI ``ResizeWithPadOrCrop`` of (C, D', H', W') to ``config.shape``, padding with 0.

    Returns the (C, *config.shape) float array and its voxel-to-LPS affine; ``resampled`` (the
    output of :func:`_resample`) supplies the affine when ``image`` lost its metadata.
    """
    import torch
    from monai.data import MetaTensor
    from monai.transforms import ResizeWithPadOrCrop

    if not isinstance(image, MetaTensor):  # torch.cat of MetaTensors keeps the resampled affine
        image = MetaTensor(image, affine=resampled.affine)
    out = ResizeWithPadOrCrop(spatial_size=config.shape, mode="constant", value=0.0)(image)
    array = torch.as_tensor(out).detach().cpu().numpy()
    out_affine = np.asarray(out.affine, dtype=np.float64) if isinstance(out, MetaTensor) else np.eye(4)
    return array, out_affine
