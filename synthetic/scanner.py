"""Scanner model: slice-profile averaging, kernel blur, calibration error, noise, storage range.

The phantom is drawn on a grid finer than the slice thickness (``n_sub`` samples per slice)
and averaged, which gives realistic through-plane partial volume. The reconstruction
kernel is a Gaussian point-spread function in-plane; noise is Gaussian, filtered to the
kernel's noise texture (soft kernels: blotchy, sharp kernels: fine-grained) and scaled to
the site's noise level. Both filters are applied in the Fourier domain (periodic borders,
harmless here because the image border is air). Values are rounded to integers and
clipped to what the site's pixel representation can store; the corners outside the
reconstruction circle get the site's padding value.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from scipy.ndimage import gaussian_filter

from .profiles import SiteProfile


def storable_hu_range(profile: SiteProfile) -> tuple[int, int]:
    """Smallest and largest HU the site's PixelRepresentation / BitsStored can hold."""
    if profile.pixel_signed:
        lo, hi = -(2 ** (profile.bits_stored - 1)), 2 ** (profile.bits_stored - 1) - 1
    else:
        lo, hi = 0, 2**profile.bits_stored - 1
    return int(lo + profile.rescale_intercept), int(hi + profile.rescale_intercept)


def average_slices(volume: np.ndarray, n_sub: int) -> np.ndarray:
    """Mean over groups of ``n_sub`` consecutive fine slices: (D*n_sub, H, W) -> (D, H, W)."""
    d = volume.shape[0] // n_sub
    out: np.ndarray = volume.reshape(d, n_sub, *volume.shape[1:]).mean(axis=1, dtype=np.float32)
    return out


def partial_volume_mask(mask: np.ndarray, n_sub: int) -> np.ndarray:
    """Series mask from a fine mask: voxels at least half covered.

    A small lesion straddling two thick slices may cover no voxel by half; it then keeps
    the voxels covered at least half as much as its best-covered voxel, so a lesion that
    was drawn is never lost.
    """
    d = mask.shape[0] // n_sub
    counts = mask.reshape(d, n_sub, *mask.shape[1:]).sum(axis=1, dtype=np.uint8)
    peak = int(counts.max())
    if peak == 0:
        return np.zeros(counts.shape, dtype=bool)
    covered: np.ndarray = 2 * counts >= min(n_sub, peak)
    return covered


def acquire(
    hu: np.ndarray, lung_frac: np.ndarray, profile: SiteProfile, pixel_mm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Apply the site's scanner to a slice-averaged HU volume.

    Parameters
    ----------
    hu : numpy.ndarray
        float32 (D, H, W) ideal HU after slice averaging.
    lung_frac : numpy.ndarray
        float32 (D, H, W) lung fraction of each voxel (parenchymal texture goes there).
    profile : SiteProfile
        The site's scanner.
    pixel_mm : float
        In-plane pixel spacing in mm.
    rng : numpy.random.Generator
        Source of texture and noise.

    Returns
    -------
    numpy.ndarray
        int32 (D, H, W) HU exactly as stored (after rescale) in the DICOM files.
    """
    d, h, w = hu.shape
    # secondary-lobule scale texture of aerated lung (about +-15 HU), drawn at half resolution
    coarse = rng.standard_normal((d, (h + 1) // 2, (w + 1) // 2), dtype=np.float32)
    texture = gaussian_filter(coarse, 0.6)
    texture = np.repeat(np.repeat(texture, 2, axis=1), 2, axis=2)[:, :h, :w]
    texture *= 15.0 / max(float(texture.std()), 1e-6)
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    # kernel blur of the object and noise texture, both in the Fourier domain (one inverse FFT)
    blur = _gaussian_transfer(h, w, profile.blur_mm / pixel_mm)
    corr_px = profile.noise_corr_mm / pixel_mm
    corr = _gaussian_transfer(h, w, corr_px)
    # Parseval: filtered white noise has variance mean(|G|^2) over the full spectrum
    full = _gaussian_transfer(h, w, corr_px, full=True)
    noise_gain = profile.noise_hu / float(np.sqrt(np.mean(full**2)))
    spectrum = sfft.rfft2(hu + texture * lung_frac) * blur + sfft.rfft2(noise) * (corr * noise_gain)
    out = sfft.irfft2(spectrum, s=(h, w)) + np.float32(profile.hu_offset)
    lo, hi = storable_hu_range(profile)
    result: np.ndarray = np.clip(np.rint(out), lo, hi).astype(np.int32)
    if profile.padding_hu is not None:
        n = hu.shape[-1]
        c = (np.arange(n) - (n - 1) / 2.0) ** 2
        outside = (c[None, :] + c[:, None]) > (n / 2.0) ** 2
        result[:, outside] = int(profile.padding_hu)
    return result


def _gaussian_transfer(h: int, w: int, sigma_px: float, *, full: bool = False) -> np.ndarray:
    """Transfer function of an in-plane Gaussian of ``sigma_px`` on an (h, w) rfft2 (or fft2) grid."""
    fy = sfft.fftfreq(h)[:, None]
    fx = (sfft.fftfreq(w) if full else sfft.rfftfreq(w))[None, :]
    transfer: np.ndarray = np.exp(-2.0 * (np.pi * sigma_px) ** 2 * (fx * fx + fy * fy)).astype(np.float32)
    return transfer
