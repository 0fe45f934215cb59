"""HDR to SDR: a PQ or HLG source (BT.2020) tone-mapped to SDR BT.709, so the networks (trained on SDR
pictures) paint what a viewer sees, and the MP4 and the GIF look right on any screen.

Pure array maths on the decoded, non-linear BT.2020 R'G'B' (16 bits, so PQ's
steep curve keeps its precision):

1. to linear light in nits: the PQ EOTF (SMPTE ST 2084), or HLG's inverse OETF
   and the OOTF of a 1000-nit display (ITU-R BT.2100, system gamma 1.2);
2. BT.2020 → BT.709 primaries (ITU-R BT.2087), in linear light;
3. the luminance tone-mapped with the extended Reinhard curve (Reinhard et
   al. 2002), HDR reference white (203 nits, ITU-R BT.2408) at SDR 1.0 and
   :data:`PEAK_NITS` at the top, colours scaled with their luminance;
4. the BT.1886 display's inverse (gamma 2.4) back to 8-bit code values.
"""

from __future__ import annotations

from functools import cache

import numpy as np

PEAK_NITS = 1000.0  # the mastering peak assumed (HDR10's common 1000 nits; HLG's reference display)
REFERENCE_WHITE = 203.0  # nits of HDR reference white (ITU-R BT.2408), mapped to SDR white

_M1, _M2 = 2610 / 16384, 2523 / 4096 * 128
_C1, _C2, _C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
_HLG_A = 0.17883277
_HLG_B, _HLG_C = 1 - 4 * _HLG_A, 0.5 - _HLG_A * np.log(4 * _HLG_A)
_BT2020_TO_BT709 = np.array([[1.6605, -0.5876, -0.0728],
                             [-0.1246, 1.1329, -0.0083],
                             [-0.0182, -0.1006, 1.1187]], dtype=np.float32)
_LUMA_709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
_LUMA_2020 = np.array([0.2627, 0.6780, 0.0593], dtype=np.float32)


def pq_to_nits(code: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084's EOTF: code values in [0, 1] → display light in nits."""
    p = np.power(np.clip(code, 0.0, 1.0), 1 / _M2)
    return 10000.0 * np.power(np.maximum(p - _C1, 0.0) / (_C2 - _C3 * p), 1 / _M1)


def hlg_to_nits(code: np.ndarray) -> np.ndarray:
    """HLG's inverse OETF, then the OOTF of a PEAK_NITS display (BT.2100): code values → nits, (H, W, 3)."""
    e = np.clip(code, 0.0, 1.0)
    scene = np.where(e <= 0.5, e * e / 3.0, (np.exp((e - _HLG_C) / _HLG_A) + _HLG_B) / 12.0)
    luminance = np.maximum(scene @ _LUMA_2020, 1e-6)[..., None]
    return PEAK_NITS * np.power(luminance, 0.2) * scene


def tone_map(nits_709: np.ndarray) -> np.ndarray:
    """Linear BT.709 light in nits → linear SDR in [0, 1] (extended Reinhard on the luminance)."""
    light = nits_709 / REFERENCE_WHITE
    luminance = np.maximum(light @ _LUMA_709, 1e-6)[..., None]
    white = PEAK_NITS / REFERENCE_WHITE
    mapped = luminance * (1 + luminance / (white * white)) / (1 + luminance)
    return np.clip(light * (mapped / luminance), 0.0, 1.0)


def to_sdr(rgb16: np.ndarray, transfer: str) -> np.ndarray:
    """(H, W, 3) uint16 non-linear BT.2020 R'G'B' of a ``"PQ"`` or ``"HLG"`` picture → uint8 SDR BT.709.

    The per-channel curves are 65536-entry tables (the same maths, looked up: a 1080p frame costs a
    few table reads per value instead of powers and exponentials)."""
    if transfer == "PQ":
        nits = _pq_table()[rgb16]
    else:
        scene = _hlg_scene_table()[rgb16]
        luminance = np.maximum(scene @ _LUMA_2020, 1e-6)[..., None]
        nits = PEAK_NITS * np.power(luminance, np.float32(0.2)) * scene
    sdr = tone_map(np.maximum(nits @ _BT2020_TO_BT709.T, 0.0))
    # gamma through a table indexed by sqrt(light): fine steps where the eye needs them (near black)
    return _gamma_table()[(np.sqrt(sdr) * 65535.0 + 0.5).astype(np.uint16)]


@cache
def _pq_table() -> np.ndarray:
    return pq_to_nits(np.arange(65536, dtype=np.float64) / 65535.0).astype(np.float32)


@cache
def _hlg_scene_table() -> np.ndarray:
    e = np.arange(65536, dtype=np.float64) / 65535.0
    return np.where(e <= 0.5, e * e / 3.0, (np.exp((e - _HLG_C) / _HLG_A) + _HLG_B) / 12.0).astype(np.float32)


@cache
def _gamma_table() -> np.ndarray:
    root = np.arange(65536, dtype=np.float64) / 65535.0  # sqrt of linear light
    return (np.power(root, 2 / 2.4) * 255.0 + 0.5).astype(np.uint8)
