"""Per-site scanner, reporting and case-mix profiles of the synthetic consortium.

Each hospital differs the way real ones do: scanner vendor and reconstruction kernel
(sharpness and noise texture), slice thickness, field of view, a small HU calibration
offset, how pixel data are stored (signed or unsigned, rescale intercept, padding outside
the reconstruction circle), instance numbering direction, report language and phrasing,
ID formats, the mix of clinical scenarios (hence the label prevalence) and how the PACS
exports the images (uncompressed, RLE or JPEG 2000 lossless).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace
from typing import Literal

from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

SCENARIOS: tuple[str, ...] = (
    "healthy",
    "asthma",
    "bacterial_pneumonia",
    "viral_pneumonia",
    "copd",
    "incidental_nodule",
    "heart_failure",
    "smoker_screening",
)
"""Clinical scenarios a synthetic patient is drawn from; they drive findings, labs and drugs."""


@dataclass(frozen=True)
class SiteProfile:
    """Everything that makes one synthetic hospital different from the others.

    Parameters
    ----------
    institution : str
        DICOM InstitutionName (fake, but PHI-like: it identifies the site).
    language : {"en", "zh"}
        Report language; "zh" sites also use Chinese patient and physician names.
    report_style : int
        Which English phrasing template the radiologists use (0, 1 or 2).
    manufacturer, model, kernel : str
        Scanner vendor, model name and ConvolutionKernel.
    kvp, tube_current_ma : int
        Tube voltage (kV) and current (mA).
    fov_mm : float
        Reconstruction field of view in mm; pixel spacing = fov_mm / matrix.
    slice_thickness_mm : float
        Slice thickness = slice spacing (contiguous axial slices), in mm.
    blur_mm : float
        In-plane Gaussian point-spread sigma of the kernel, in mm.
    noise_hu, noise_corr_mm : float
        Image noise standard deviation (HU) and its correlation length (mm; soft kernels
        give blotchy noise, sharp kernels fine-grained noise).
    hu_offset : float
        Calibration error added to every HU value (a few HU).
    pixel_signed : bool
        PixelRepresentation 1 (int16) if True, else 0 (uint16).
    rescale_intercept : float
        RescaleIntercept; stored value = HU - intercept.
    bits_stored : int
        BitsStored (12 for vendors that store 0..4095, 16 otherwise).
    padding_hu : float | None
        HU written outside the circular reconstruction field (PixelPaddingValue), or None
        when the whole square is reconstructed.
    head_first_numbering : bool
        InstanceNumber 1 at the most cranial slice if True, at the most caudal if False.
    localizer : bool
        Whether the PACS export also holds the scout (ImageType ...\\LOCALIZER) series.
    charset : str
        SpecificCharacterSet of the DICOM files.
    mrn_format, accession_format : str
        ``str.format`` patterns; fields ``n`` (int), ``yy``, ``yyyy``, ``date`` (str).
    scenario_weights : tuple[float, ...]
        Relative frequency of each of :data:`SCENARIOS`, in that order.
    transfer_syntax : str
        TransferSyntaxUID of the exported images (default: Explicit VR Little Endian); PACS
        exports are often compressed losslessly (RLE, JPEG 2000).
    """

    institution: str
    language: Literal["en", "zh"]
    report_style: int
    manufacturer: str
    model: str
    kernel: str
    kvp: int
    tube_current_ma: int
    fov_mm: float
    slice_thickness_mm: float
    blur_mm: float
    noise_hu: float
    noise_corr_mm: float
    hu_offset: float
    pixel_signed: bool
    rescale_intercept: float
    bits_stored: int
    padding_hu: float | None
    head_first_numbering: bool
    localizer: bool
    charset: str
    mrn_format: str
    accession_format: str
    scenario_weights: tuple[float, ...]
    transfer_syntax: str = ExplicitVRLittleEndian


_BASE_PROFILES: tuple[SiteProfile, ...] = (
    SiteProfile(
        institution="Northfield General Hospital", language="en", report_style=0,
        manufacturer="SIEMENS", model="SOMATOM Definition AS+", kernel="B31f", kvp=120,
        tube_current_ma=180, fov_mm=350.0, slice_thickness_mm=5.0, blur_mm=1.5, noise_hu=14.0,
        noise_corr_mm=2.2, hu_offset=4.0, pixel_signed=False, rescale_intercept=-1024.0,
        bits_stored=12, padding_hu=None, head_first_numbering=True, localizer=True,
        charset="ISO_IR 100", mrn_format="MRN{n:07d}", accession_format="NGH{yy}{n:05d}",
        scenario_weights=(0.20, 0.07, 0.18, 0.10, 0.14, 0.15, 0.10, 0.06),
    ),
    SiteProfile(
        institution="Jiangnan Provincial People's Hospital", language="zh", report_style=0,
        manufacturer="TOSHIBA", model="Aquilion Prime SP", kernel="FC52", kvp=120,
        tube_current_ma=220, fov_mm=320.0, slice_thickness_mm=7.5, blur_mm=0.9, noise_hu=26.0,
        noise_corr_mm=1.0, hu_offset=-5.0, pixel_signed=True, rescale_intercept=0.0,
        bits_stored=16, padding_hu=-2048.0, head_first_numbering=False, localizer=False,
        charset="ISO_IR 192", mrn_format="ZY{n:08d}", accession_format="CT{date}{n:04d}",
        scenario_weights=(0.14, 0.05, 0.14, 0.20, 0.09, 0.22, 0.05, 0.11), transfer_syntax=RLELossless,
    ),
    SiteProfile(
        institution="Lakeside University Medical Center", language="en", report_style=1,
        manufacturer="GE MEDICAL SYSTEMS", model="LightSpeed VCT", kernel="STANDARD", kvp=120,
        tube_current_ma=250, fov_mm=380.0, slice_thickness_mm=10.0, blur_mm=1.2, noise_hu=18.0,
        noise_corr_mm=1.8, hu_offset=7.0, pixel_signed=True, rescale_intercept=-1024.0,
        bits_stored=16, padding_hu=-3024.0, head_first_numbering=True, localizer=True,
        charset="ISO_IR 100", mrn_format="LUM-{n:06d}", accession_format="ACC{n:08d}",
        scenario_weights=(0.12, 0.05, 0.15, 0.06, 0.20, 0.10, 0.22, 0.10), transfer_syntax=JPEG2000Lossless,
    ),
    SiteProfile(
        institution="Riverside Community Hospital", language="en", report_style=2,
        manufacturer="Philips", model="Brilliance 64", kernel="B", kvp=120,
        tube_current_ma=200, fov_mm=360.0, slice_thickness_mm=5.0, blur_mm=1.3, noise_hu=16.0,
        noise_corr_mm=2.0, hu_offset=-3.0, pixel_signed=False, rescale_intercept=-1024.0,
        bits_stored=12, padding_hu=None, head_first_numbering=True, localizer=False,
        charset="ISO_IR 100", mrn_format="RCH{n:08d}", accession_format="RC{yy}-{n:06d}",
        scenario_weights=(0.25, 0.08, 0.16, 0.12, 0.12, 0.12, 0.10, 0.05),
    ),
    SiteProfile(
        institution="Eastmoor Regional Medical Centre", language="en", report_style=0,
        manufacturer="SIEMENS", model="SOMATOM go.Top", kernel="Br40d", kvp=110,
        tube_current_ma=160, fov_mm=340.0, slice_thickness_mm=7.5, blur_mm=1.1, noise_hu=20.0,
        noise_corr_mm=1.5, hu_offset=2.0, pixel_signed=False, rescale_intercept=-1024.0,
        bits_stored=12, padding_hu=None, head_first_numbering=False, localizer=True,
        charset="ISO_IR 100", mrn_format="EM{n:09d}", accession_format="EMR{yyyy}{n:06d}",
        scenario_weights=(0.18, 0.06, 0.14, 0.08, 0.16, 0.16, 0.14, 0.08),
    ),
    SiteProfile(
        institution="Pinecrest Memorial Hospital", language="en", report_style=1,
        manufacturer="CANON_MEC", model="Aquilion Lightning", kernel="FC08", kvp=120,
        tube_current_ma=210, fov_mm=330.0, slice_thickness_mm=5.0, blur_mm=1.6, noise_hu=12.0,
        noise_corr_mm=2.4, hu_offset=-6.0, pixel_signed=True, rescale_intercept=0.0,
        bits_stored=16, padding_hu=-2048.0, head_first_numbering=True, localizer=False,
        charset="ISO_IR 100", mrn_format="PM{n:07d}", accession_format="PMH{yy}{n:06d}",
        scenario_weights=(0.22, 0.09, 0.17, 0.11, 0.11, 0.13, 0.11, 0.06),
    ),
)


def site_names(n_sites: int) -> list[str]:
    """Names of the first ``n_sites`` sites: "hospital-a", "hospital-b", ..., "hospital-aa", ...

    Parameters
    ----------
    n_sites : int
        Number of sites (>= 1).

    Returns
    -------
    list[str]
        One name per site, in site-index order.
    """
    if n_sites < 1:
        raise ValueError(f"n_sites must be >= 1, got {n_sites}")
    letters = string.ascii_lowercase
    names = []
    for index in range(n_sites):
        suffix, k = "", index
        while True:
            suffix = letters[k % 26] + suffix
            k = k // 26 - 1
            if k < 0:
                break
        names.append(f"hospital-{suffix}")
    return names


def site_profiles(n_sites: int) -> list[SiteProfile]:
    """Profiles of the first ``n_sites`` sites; only site index 1 reports in Chinese.

    Beyond the six base profiles, the English ones are reused as further campuses with
    their own institution name and a shifted calibration offset.

    Parameters
    ----------
    n_sites : int
        Number of sites (>= 1).

    Returns
    -------
    list[SiteProfile]
        One profile per site, aligned with :func:`site_names`.
    """
    if n_sites < 1:
        raise ValueError(f"n_sites must be >= 1, got {n_sites}")
    english = [p for p in _BASE_PROFILES if p.language == "en"]
    profiles = list(_BASE_PROFILES[:n_sites])
    for index in range(len(_BASE_PROFILES), n_sites):
        base = english[index % len(english)]
        campus = index // len(english) + 1
        profiles.append(
            replace(
                base,
                institution=f"{base.institution}, Campus {campus}",
                hu_offset=base.hu_offset + (campus % 5) - 2.0,
                mrn_format=f"C{campus}" + base.mrn_format,
                accession_format=f"C{campus}" + base.accession_format,
            )
        )
    return profiles
