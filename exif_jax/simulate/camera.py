"""A simulated camera: a fixed processing chain from a photo's pixels to a JPEG with EXIF that describes the chain.

    cam = default_zoo()[0]
    jpeg = cam.render(rgb_uint8, seed=0)          # bytes of a JPEG, same size as rgb, EXIF Make/Model/ISO/...

The chain (camera constants, recorded in EXIF and `cameras.json`): sensor resolution (resampling factor + kernel)
-> linear light -> Bayer CFA mosaic -> shot + read noise by ISO -> demosaicing -> display gamma -> denoising ->
sharpening -> resampling to the output size -> JPEG quantization tables + chroma subsampling.

White balance, tone curve and saturation are drawn per PHOTO (`Look`), shared by every camera that renders that
photo, and every render is given the per-channel mean/std of that camera-independent reference: cameras differ in
local statistics only, never in global colour or brightness.
"""
from __future__ import annotations

import dataclasses
import io
import zlib

import numpy as np

from exif_jax.simulate import isp

SOFTWARE = "exif-jax simulate 1"
SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}  # Pillow's `subsampling` values

# IJG (JPEG Annex K) base tables, row-major (natural) order.
_IJG_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17,
             22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78,
             87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
_IJG_CHROMA = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66,
               99, 99, 99, 99, 99, 99) + (99,) * 32

# EXIF codes (values as EXIF 2.3 defines them; metadata-extractor describes them by name).
_LEVEL = {"normal": 0, "low": 1, "soft": 1, "high": 2, "hard": 2}
_LIGHT_SOURCE = {"unknown": 0, "daylight": 1, "fluorescent": 2, "tungsten": 3, "flash": 4, "cloudy": 10, "shade": 11}


def quantization_tables(quality: int, tilt: float = 0.0) -> list[list[int]]:
    """Luma and chroma tables: the IJG tables at `quality` (libjpeg's scaling), then tilted towards coarser
    (`tilt` > 0) or finer (< 0) high frequencies, as makers' own tables differ from the IJG ones."""
    q = int(np.clip(quality, 1, 100))
    scale = 5000 / q if q < 50 else 200 - 2 * q
    u, v = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    shape = (1.0 + tilt * ((u + v) / 14.0 - 0.5)).reshape(-1)
    out = []
    for base in (_IJG_LUMA, _IJG_CHROMA):
        t = np.floor((np.asarray(base, np.float64) * scale + 50) / 100) * shape
        out.append([int(x) for x in np.clip(np.rint(t), 1, 255)])
    return out


@dataclasses.dataclass(frozen=True)
class Look:
    """Per-photo rendering shared by all cameras: white balance, tone curve (contrast), saturation."""
    wb_gains: tuple[float, float, float]
    light_source: str
    contrast: str  # normal | soft | hard
    saturation: str  # normal | low | high

    CONTRAST = {"normal": 0.0, "soft": -0.25, "hard": 0.25}
    SATURATION = {"normal": 1.0, "low": 0.85, "high": 1.15}

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Look":
        light = str(rng.choice(list(_LIGHT_SOURCE)))
        gains = tuple(float(g) for g in np.exp(rng.normal(0.0, 0.04, 3)))
        return cls(gains, light, str(rng.choice(list(cls.CONTRAST))), str(rng.choice(list(cls.SATURATION))))

    @classmethod
    def for_photo(cls, rgb: np.ndarray, seed: int = 0) -> "Look":
        """The look of a photo: a function of its pixels and `seed` only (never of the camera)."""
        return cls.draw(np.random.default_rng([int(seed), zlib.crc32(np.ascontiguousarray(rgb).tobytes())]))

    def apply(self, rgb_uint8: np.ndarray) -> np.ndarray:
        return isp.photo_look(rgb_uint8.astype(np.float32) / 255.0, self.wb_gains, self.CONTRAST[self.contrast],
                              self.SATURATION[self.saturation])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def reference(rgb_uint8: np.ndarray, look: Look) -> np.ndarray:
    """The camera-independent reference of a photo (float32 [0, 1]): its look, nothing camera-specific. Every
    camera's render has this reference's per-channel mean and standard deviation."""
    return look.apply(rgb_uint8)


@dataclasses.dataclass(frozen=True)
class Camera:
    """One simulated camera model; every field is a constant of its processing chain."""
    id: str
    make: str
    model: str
    cfa: str  # Bayer pattern, e.g. "RGGB"
    demosaic: str  # bilinear | vng | edge-aware
    iso: int
    shot_noise: float  # shot-noise variance per unit linear signal at ISO 100
    read_noise: float  # read-noise std at ISO 100 (linear units)
    denoise: str  # none | gaussian | median | bilateral
    denoise_strength: float
    sharpen_amount: float
    sharpen_radius: float
    sensor_scale: float  # sensor pixels per output pixel, per side (> 1: downsampled, < 1: digital zoom)
    resample_kernel: str  # nearest | linear | cubic | lanczos | area
    jpeg_quality: int
    qtable_tilt: float
    subsampling: str  # 4:4:4 | 4:2:2 | 4:2:0
    ycbcr_positioning: int = 1  # 1 centered, 2 co-sited
    focal_length_mm: float = 5.0

    def __post_init__(self):
        problems = []
        if self.cfa not in isp.CFA_CODES:
            problems.append(f"cfa {self.cfa!r} not in {sorted(isp.CFA_CODES)}")
        if self.demosaic not in isp.DEMOSAIC:
            problems.append(f"demosaic {self.demosaic!r} not in {isp.DEMOSAIC}")
        if self.resample_kernel not in isp.KERNELS:
            problems.append(f"resample_kernel {self.resample_kernel!r} not in {sorted(isp.KERNELS)}")
        if self.subsampling not in SUBSAMPLING:
            problems.append(f"subsampling {self.subsampling!r} not in {sorted(SUBSAMPLING)}")
        if self.denoise not in ("none", "gaussian", "median", "bilateral"):
            problems.append(f"denoise {self.denoise!r} unknown")
        if not (0.25 <= self.sensor_scale <= 4):
            problems.append(f"sensor_scale {self.sensor_scale} outside [0.25, 4]")
        if problems:
            raise ValueError(f"camera {self.id!r}: " + "; ".join(problems))

    # ------------------------------------------------------------------ chain
    @property
    def sharpness(self) -> str:
        return "soft" if self.sharpen_amount < 0.3 else ("normal" if self.sharpen_amount < 0.9 else "hard")

    def _noise_rng(self, rgb: np.ndarray, seed: int) -> np.random.Generator:
        return np.random.default_rng([int(seed), zlib.crc32(self.id.encode()),
                                      zlib.crc32(np.ascontiguousarray(rgb).tobytes())])

    def process(self, rgb_uint8: np.ndarray, *, seed: int = 0, look: Look | None = None) -> np.ndarray:
        """The chain up to (not including) JPEG: uint8 RGB of the input's size."""
        rgb_uint8 = np.ascontiguousarray(rgb_uint8)
        if rgb_uint8.dtype != np.uint8 or rgb_uint8.ndim != 3 or rgb_uint8.shape[2] != 3:
            raise ValueError(f"camera {self.id}: expected uint8 RGB [H, W, 3], got {rgb_uint8.dtype} "
                             f"{list(rgb_uint8.shape)}")
        h, w = rgb_uint8.shape[:2]
        if min(h, w) < 16:
            raise ValueError(f"camera {self.id}: image {w}x{h} is smaller than 16 px")
        look = look or Look.for_photo(rgb_uint8, seed)
        ref = reference(rgb_uint8, look)
        sensor_hw = (max(int(round(h * self.sensor_scale)), 8), max(int(round(w * self.sensor_scale)), 8))
        scene = isp.resize(ref, sensor_hw, "area" if self.sensor_scale < 1 else "cubic")  # the optics: same for all
        raw = isp.mosaic(isp.srgb_to_linear(scene), self.cfa)
        raw = isp.sensor_noise(raw, self.iso, self._noise_rng(rgb_uint8, seed), self.shot_noise, self.read_noise)
        x = isp.linear_to_srgb(isp.demosaic(np.clip(raw, 0.0, 1.0), self.cfa, self.demosaic))
        x = isp.denoise(x, self.denoise, self.denoise_strength)
        x = isp.sharpen(x, self.sharpen_amount, self.sharpen_radius)
        x = isp.resize(x, (h, w), self.resample_kernel)
        for _ in range(3):  # clipping to [0, 1] moves the statistics a little: match again
            x = np.clip(isp.match_stats(x, ref), 0.0, 1.0)
        return isp.to_uint8(x)

    def render(self, rgb_uint8: np.ndarray, *, seed: int = 0, look: Look | None = None) -> bytes:
        """JPEG bytes of the photo as this camera records it, with EXIF describing the chain."""
        from PIL import Image

        look = look or Look.for_photo(np.ascontiguousarray(rgb_uint8), seed)
        pixels = self.process(rgb_uint8, seed=seed, look=look)
        exif = self.exif_bytes(pixels.shape[1], pixels.shape[0], look)
        jpeg = self._encode(pixels, exif)
        # Chroma subsampling and coarse tables lower a channel's std a little: correct the pixels once so that the
        # DECODED render keeps the reference's statistics too.
        with Image.open(io.BytesIO(jpeg)) as im:
            decoded = np.asarray(im.convert("RGB"), np.float32) / 255.0
        ref = reference(rgb_uint8, look)
        x = pixels.astype(np.float32) / 255.0
        gain = ref.std(axis=(0, 1)) / np.maximum(decoded.std(axis=(0, 1)), 1e-6)
        x = (x - x.mean(axis=(0, 1))) * gain + x.mean(axis=(0, 1)) + (ref.mean(axis=(0, 1)) - decoded.mean(axis=(0, 1)))
        return self._encode(isp.to_uint8(x), exif)

    def _encode(self, pixels: np.ndarray, exif: bytes) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", qtables=quantization_tables(self.jpeg_quality, self.qtable_tilt),
                                     subsampling=SUBSAMPLING[self.subsampling], exif=exif)
        return buf.getvalue()

    # ------------------------------------------------------------------ EXIF
    def exif_bytes(self, width: int, height: int, look: Look) -> bytes:
        from PIL import Image
        from PIL.TiffImagePlugin import IFDRational

        ex = Image.Exif()
        ex[0x010F] = self.make
        ex[0x0110] = self.model
        ex[0x0112] = 1  # Orientation: top-left
        ex[0x011A] = IFDRational(72, 1)
        ex[0x011B] = IFDRational(72, 1)
        ex[0x0128] = 2  # inches
        ex[0x0131] = SOFTWARE
        ex[0x0213] = self.ycbcr_positioning
        sub = ex.get_ifd(0x8769)
        sub[0x8827] = int(self.iso)
        sub[0x9000] = b"0230"
        sub[0x9208] = _LIGHT_SOURCE[look.light_source]
        sub[0x920A] = IFDRational(int(round(self.focal_length_mm * 10)), 10)
        sub[0xA001] = 1  # sRGB
        sub[0xA002] = int(width)
        sub[0xA003] = int(height)
        sub[0xA217] = 2  # one-chip colour area sensor
        sub[0xA402] = 0  # auto exposure
        sub[0xA403] = 0 if look.light_source == "unknown" else 1  # white balance: auto / manual
        sub[0xA404] = IFDRational(int(round(100 / min(self.sensor_scale, 1.0))), 100)  # digital zoom when < 1
        sub[0xA406] = 0  # standard scene
        sub[0xA408] = _LEVEL[look.contrast]
        sub[0xA409] = _LEVEL[look.saturation]
        sub[0xA40A] = _LEVEL[self.sharpness]
        return ex.tobytes()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["sharpness"] = self.sharpness
        d["software"] = SOFTWARE
        d["quantization_tables"] = quantization_tables(self.jpeg_quality, self.qtable_tilt)
        return d
