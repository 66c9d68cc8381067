"""The image-signal-processing steps of a simulated camera, on float32 RGB in [0, 1] (numpy + OpenCV).

Each function is one stage of what makes real cameras' pixels differ locally: the colour filter array (CFA) and
its demosaicing, sensor noise that grows with ISO, denoising and sharpening, resampling. Global colour and
brightness are NOT camera traits here (a content detector would see them without training): `match_stats` gives
every render the per-channel mean and standard deviation of a camera-independent reference of the same photo.
"""
from __future__ import annotations

import cv2
import numpy as np

# CFA pattern (2x2, row-major) -> OpenCV's Bayer code (OpenCV names the pattern from the second row; checked in
# tests/test_simulate.py by demosaicing a flat colour).
CFA_CODES = {"RGGB": "BG", "BGGR": "RG", "GRBG": "GB", "GBRG": "GR"}
DEMOSAIC = ("bilinear", "vng", "edge-aware")
KERNELS = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
           "lanczos": cv2.INTER_LANCZOS4, "area": cv2.INTER_AREA}
GAMMA = 2.2  # display <-> linear transfer, the same for every camera
_CHANNEL = {"R": 0, "G": 1, "B": 2}


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.power(np.clip(x, 0.0, 1.0), GAMMA, dtype=np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.power(np.clip(x, 0.0, 1.0), 1.0 / GAMMA, dtype=np.float32)


def resize(x: np.ndarray, hw: tuple[int, int], kernel: str) -> np.ndarray:
    if x.shape[:2] == tuple(hw):
        return x
    return cv2.resize(x, (int(hw[1]), int(hw[0])), interpolation=KERNELS[kernel])


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """One colour sample per pixel, as the sensor behind a Bayer `pattern` (e.g. "RGGB") records it."""
    out = np.empty(rgb.shape[:2], np.float32)
    for dy in range(2):
        for dx in range(2):
            out[dy::2, dx::2] = rgb[dy::2, dx::2, _CHANNEL[pattern[2 * dy + dx]]]
    return out


def sensor_noise(raw: np.ndarray, iso: int, rng: np.random.Generator, shot: float, read: float) -> np.ndarray:
    """Signal-dependent shot noise (variance `shot * gain * x`) plus read noise (std `read * gain`) on linear raw
    values, gain = ISO / 100, as a real sensor adds them before any processing."""
    gain = iso / 100.0
    std = np.sqrt(np.maximum(raw, 0.0) * shot * gain + (read * gain) ** 2)
    return raw + std * rng.standard_normal(raw.shape, dtype=np.float32)


def demosaic(raw: np.ndarray, pattern: str, algorithm: str) -> np.ndarray:
    """Interpolates the missing colours (OpenCV's bilinear, VNG or edge-aware demosaicing); raw in [0, 1]."""
    code = CFA_CODES[pattern]
    if algorithm == "vng":  # OpenCV's VNG takes 8-bit input only
        q = np.clip(np.rint(raw * 255.0), 0, 255).astype(np.uint8)
        return cv2.cvtColor(q, getattr(cv2, f"COLOR_Bayer{code}2RGB_VNG")).astype(np.float32) / 255.0
    q = np.clip(np.rint(raw * 65535.0), 0, 65535).astype(np.uint16)  # a 16-bit sensor readout
    suffix = {"bilinear": "", "edge-aware": "_EA"}[algorithm]
    return cv2.cvtColor(q, getattr(cv2, f"COLOR_Bayer{code}2RGB{suffix}")).astype(np.float32) / 65535.0


def denoise(x: np.ndarray, kind: str, strength: float) -> np.ndarray:
    """`gaussian`: blend with a Gaussian blur; `median`: 3x3 median blend; `bilateral`: edge-preserving."""
    if kind == "none" or strength <= 0:
        return x
    if kind == "gaussian":
        smooth = cv2.GaussianBlur(x, (0, 0), 1.0)
    elif kind == "median":
        q = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
        smooth = cv2.medianBlur(q, 3).astype(np.float32) / 255.0
    elif kind == "bilateral":
        smooth = cv2.bilateralFilter(x, 5, 0.08, 2.0)
    else:
        raise ValueError(f"unknown denoiser {kind!r}: expected none, gaussian, median or bilateral")
    return (1.0 - strength) * x + strength * smooth


def sharpen(x: np.ndarray, amount: float, radius: float) -> np.ndarray:
    """Unsharp mask: x + amount * (x - blur(x, radius))."""
    if amount <= 0:
        return x
    return x + amount * (x - cv2.GaussianBlur(x, (0, 0), radius))


def photo_look(rgb: np.ndarray, wb_gains, contrast: float, saturation: float) -> np.ndarray:
    """The per-photo rendering every camera shares (white balance, tone curve, saturation): a camera-independent
    reference, so that no camera leaves a global colour or brightness signature."""
    x = srgb_to_linear(rgb) * np.asarray(wb_gains, np.float32)
    x = linear_to_srgb(x)
    if contrast:  # an S-curve around mid-grey (contrast > 0) or its flattening (< 0)
        x = np.clip(x + contrast * (x - 0.5) * (1.0 - np.abs(2.0 * x - 1.0)), 0.0, 1.0)
    if saturation != 1.0:
        grey = x.mean(axis=2, keepdims=True)
        x = np.clip(grey + saturation * (x - grey), 0.0, 1.0)
    return x.astype(np.float32)


def match_stats(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per channel: shift and scale `x` to the mean and standard deviation of `reference`."""
    xm, xs = x.mean(axis=(0, 1)), x.std(axis=(0, 1))
    rm, rs = reference.mean(axis=(0, 1)), reference.std(axis=(0, 1))
    return ((x - xm) * (rs / np.maximum(xs, 1e-6)) + rm).astype(np.float32)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
