"""Value descriptions as metadata-extractor writes them (`f/2.8`, `1/15 sec`, `Flash did not fire, auto`, ...).

A port of the rules of metadata-extractor's `TagDescriptor`, `ExifDescriptorBase` (shared by the IFD0, SubIFD,
Interoperability and Thumbnail descriptors), `ExifThumbnailDescriptor` and `GpsDescriptor`, written against the
`Value` getters of `reader_values.py`, which reproduce the Java `Directory` conversions these rules rely on.
`describe(directory_name, values, tag)` returns the description, or None where metadata-extractor's descriptor
returns null (the reference dumps print those as empty values).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from exif_jax.exif import tags as T
from exif_jax.exif.reader_values import (
    Rational,
    Value,
    clean_text,
    d2i,
    decimal_format,
    f32,
    java_round,
    java_trim,
)

Values = Mapping[int, Value]


# -- TagDescriptor helpers --------------------------------------------------------------------------------------


def _integer(v: Values, tag: int) -> int | None:
    x = v.get(tag)
    return None if x is None else x.get_integer()


def _string(v: Values, tag: int) -> str | None:
    x = v.get(tag)
    return None if x is None else x.get_string()


def _rational(v: Values, tag: int) -> Rational | None:
    x = v.get(tag)
    return None if x is None else x.get_rational()


def default_description(v: Values, tag: int) -> str | None:
    """`TagDescriptor.getDescription`: `[N values]` for arrays longer than 16, else `Directory.getString`."""
    x = v.get(tag)
    if x is None:
        return None
    n = x.array_length()
    if n is not None and n > 16:
        return f"[{n} values]"
    return x.get_string()


def indexed(v: Values, tag: int, base: int, *descriptions: str | None) -> str | None:
    index = _integer(v, tag)
    if index is None:
        return None
    i = index - base
    if 0 <= i < len(descriptions) and descriptions[i] is not None:
        return descriptions[i]
    return f"Unknown ({index})"


def version_string(components: list[int], major_digits: int) -> str:
    """`TagDescriptor.convertBytesToVersionString`: [0x30,0x32,0x32,0x31] -> `2.21`, [2,0,0,0] -> `2.000`."""
    out = []
    for i, comp in enumerate(components[:4]):
        if i == major_digits:
            out.append(".")
        c = comp & 0xFFFF
        if c < 0x30:
            c = (c + 0x30) & 0xFFFF
        if i == 0 and c == 0x30:
            continue
        out.append(chr(c))
    return "".join(out)


def version_bytes(v: Values, tag: int, major_digits: int) -> str | None:
    x = v.get(tag)
    if x is None:
        return None
    arr = x.get_int_array()
    return None if arr is None else version_string(arr, major_digits)


def fstop(f: float) -> str:
    return "f/" + decimal_format(f, 1, min_frac=1, half_up=True)


def focal_length(mm: float) -> str:
    return decimal_format(mm, 1, half_up=True) + " mm"


def orientation(v: Values, tag: int) -> str | None:
    return indexed(
        v,
        tag,
        1,
        "Top, left side (Horizontal / normal)",
        "Top, right side (Mirror horizontal)",
        "Bottom, right side (Rotate 180)",
        "Bottom, left side (Mirror vertical)",
        "Left side, top (Mirror horizontal and rotate 270 CW)",
        "Right side, top (Rotate 90 CW)",
        "Right side, bottom (Mirror horizontal and rotate 90 CW)",
        "Left side, bottom (Rotate 270 CW)",
    )


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def shutter_speed(v: Values, tag: int) -> str | None:
    """APEX shutter speed -> `1/125 sec` (float32 arithmetic as in the Java source)."""
    x = v.get(tag)
    apex = None if x is None else x.get_float()
    if apex is None:
        return None
    if apex <= 1:
        e = _exp(apex * math.log(2.0))
        power = f32(1.0 / e) if e != 0 else math.inf
        power10 = java_round(power * 10.0)
        fpower = f32(f32(float(power10)) / 10.0)
        return decimal_format(fpower, 2, half_up=True) + " sec"
    # Newer metadata-extractor releases round here (the reference dumps show 1/125 for an APEX of 6.9658)
    return f"1/{java_round(_exp(apex * math.log(2.0)))} sec"


def lens_specification(v: Values, tag: int) -> str | None:
    x = v.get(tag)
    vals = None if x is None else x.get_rational_array()
    if vals is None or len(vals) != 4 or (vals[0].is_zero() and vals[2].is_zero()):
        return None
    if vals[0].double_value() == vals[1].double_value():
        s = vals[0].simple_string(True) + "mm"
    else:
        s = vals[0].simple_string(True) + "-" + vals[1].simple_string(True) + "mm"
    if not vals[2].is_zero():
        s += " "
        if vals[2].double_value() == vals[3].double_value():
            s += fstop(vals[2].double_value())
        else:
            s += (
                "f/"
                + decimal_format(vals[2].double_value(), 1, min_frac=1, half_up=True)
                + "-"
                + decimal_format(vals[3].double_value(), 1, min_frac=1, half_up=True)
            )
    return s


def encoded_text(v: Values, tag: int) -> str | None:
    """`getEncodedTextDescription` (User Comment, GPS Processing Method): an 8-byte charset header, then text."""
    x = v.get(tag)
    raw = None if x is None else x.get_byte_array()
    if raw is None:
        return None
    if len(raw) == 0:
        return ""
    if len(raw) >= 10:
        head = raw[:10].decode("utf-8", errors="replace")
        for name, codec in (("ASCII", "utf-8"), ("UNICODE", "utf-16-le"), ("JIS", "shift_jis")):
            if head.startswith(name):
                for j in range(len(name), 10):
                    if raw[j] not in (0, 0x20):
                        return java_trim(raw[j:].decode(codec, errors="replace"))
                return java_trim(raw[10:].decode(codec, errors="replace"))
    return java_trim(raw.decode("utf-8", errors="replace"))


def unicode_text(v: Values, tag: int) -> str | None:
    """Windows XP tags: UTF-16LE, trimmed."""
    x = v.get(tag)
    raw = None if x is None else x.get_byte_array()
    if raw is None:
        return None
    return java_trim(raw.decode("utf-16-le", errors="replace"))


# -- ExifDescriptorBase -----------------------------------------------------------------------------------------


def _resolution_unit(v: Values) -> str | None:
    return indexed(v, 0x0128, 1, "(No unit)", "Inch", "cm")


def _resolution(v: Values, tag: int) -> str | None:
    r = _rational(v, tag)
    if r is None:
        return None
    unit = _resolution_unit(v)
    return f"{r.simple_string(True)} dots per {'unit' if unit is None else unit.lower()}"


def _with_suffix(v: Values, tag: int, suffix: str) -> str | None:
    s = _string(v, tag)
    return None if s is None else s + suffix


def _interop_index(v: Values) -> str | None:
    s = _string(v, 0x0001)
    if s is None:
        return None
    return "Recommended Exif Interoperability Rules (ExifR98)" if java_trim(s).lower() == "r98" else f"Unknown ({s})"


def _photometric(v: Values) -> str | None:
    i = _integer(v, 0x0106)
    if i is None:
        return None
    names = {0: "WhiteIsZero", 1: "BlackIsZero", 2: "RGB", 3: "RGB Palette", 4: "Transparency Mask", 5: "CMYK",
             6: "YCbCr", 8: "CIELab", 9: "ICCLab", 10: "ITULab", 32803: "Color Filter Array", 32844: "Pixar LogL",
             32845: "Pixar LogLuv", 32892: "Linear Raw"}  # fmt: skip
    return names.get(i, "Unknown colour space")


_COMPRESSION = {
    1: "Uncompressed", 2: "CCITT 1D", 3: "T4/Group 3 Fax", 4: "T6/Group 4 Fax", 5: "LZW", 6: "JPEG (old-style)",
    7: "JPEG", 8: "Adobe Deflate", 9: "JBIG B&W", 10: "JBIG Color", 99: "JPEG", 262: "Kodak 262", 32766: "Next",
    32767: "Sony ARW Compressed", 32769: "Packed RAW", 32770: "Samsung SRW Compressed", 32771: "CCIRLEW",
    32772: "Samsung SRW Compressed 2", 32773: "PackBits", 32809: "Thunderscan", 32867: "Kodak KDC Compressed",
    32895: "IT8CTPAD", 32896: "IT8LW", 32897: "IT8MP", 32898: "IT8BL", 32908: "PixarFilm", 32909: "PixarLog",
    32946: "Deflate", 32947: "DCS", 34661: "JBIG", 34676: "SGILog", 34677: "SGILog24", 34712: "JPEG 2000",
    34713: "Nikon NEF Compressed", 34715: "JBIG2 TIFF FX",
    34718: "Microsoft Document Imaging (MDI) Binary Level Codec",
    34719: "Microsoft Document Imaging (MDI) Progressive Transform Codec",
    34720: "Microsoft Document Imaging (MDI) Vector", 34892: "Lossy JPEG", 65000: "Kodak DCR Compressed",
    65535: "Pentax PEF Compressed",
}  # fmt: skip

_LIGHT_SOURCE = {
    0: "Unknown", 1: "Daylight", 2: "Florescent", 3: "Tungsten (Incandescent)", 4: "Flash", 9: "Fine Weather",
    10: "Cloudy", 11: "Shade", 12: "Daylight Fluorescent", 13: "Day White Fluorescent", 14: "Cool White Fluorescent",
    15: "White Fluorescent", 16: "Warm White Fluorescent", 17: "Standard light A", 18: "Standard light B",
    19: "Standard light C", 20: "D55", 21: "D65", 22: "D75", 23: "D50", 24: "ISO Studio Tungsten", 255: "Other",
}  # fmt: skip

_METERING = {0: "Unknown", 1: "Average", 2: "Center weighted average", 3: "Spot", 4: "Multi-spot",
             5: "Multi-segment", 6: "Partial", 255: "(Other)"}  # fmt: skip


def _lookup(v: Values, tag: int, table: dict[int, str]) -> str | None:
    i = _integer(v, tag)
    if i is None:
        return None
    return table.get(i, f"Unknown ({i})")


def _flash(v: Values) -> str | None:
    i = _integer(v, 0x9209)
    if i is None:
        return None
    s = "Flash fired" if i & 0x1 else "Flash did not fire"
    if i & 0x4:
        s += ", return detected" if i & 0x2 else ", return not detected"
    if (i & 0x10) and (i & 0x0F):
        s += ", auto"
    if i & 0x40:
        s += ", red-eye reduction"
    return s


def _reference_black_white(v: Values) -> str | None:
    x = v.get(0x0214)
    if x is None:
        return None
    ints = x.get_int_array()
    if ints is None or len(ints) < 6:
        if x.kind == "long[]" and len(x.data) >= 6:  # type: ignore[arg-type]
            ints = [((n + (1 << 31)) % (1 << 32)) - (1 << 31) for n in x.data]  # type: ignore[union-attr]
        else:
            return None
    return f"[{ints[0]},{ints[2]},{ints[4]}] [{ints[1]},{ints[3]},{ints[5]}]"


def _ycbcr_subsampling(v: Values) -> str | None:
    x = v.get(0x0212)
    arr = None if x is None else x.get_int_array()
    if arr is None or len(arr) < 2:
        return None
    if arr[0] == 2 and arr[1] == 1:
        return "YCbCr4:2:2"
    if arr[0] == 2 and arr[1] == 2:
        return "YCbCr4:2:0"
    return "(Unknown)"


def _components(v: Values) -> str | None:
    x = v.get(0x9101)
    arr = None if x is None else x.get_int_array()
    if arr is None:
        return None
    names = ["", "Y", "Cb", "Cr", "R", "G", "B"]
    return "".join(names[j] for j in arr[:4] if 0 < j < 7)


def _format_cfa(pattern: list[int] | None) -> str | None:
    if pattern is None:
        return None
    if len(pattern) < 2:
        return "<truncated data>"
    if pattern[0] == 0 and pattern[1] == 0:
        return "<zero pattern size>"
    end = 2 + pattern[0] * pattern[1]
    if end > len(pattern):
        return "<invalid pattern size>"
    colors = ["Red", "Green", "Blue", "Cyan", "Magenta", "Yellow", "White"]
    out = ["["]
    for pos in range(2, end):
        c = pattern[pos]
        out.append(colors[c] if 0 <= c <= 6 else "Unknown")
        if pattern[1] != 0 and (pos - 2) % pattern[1] == 0:
            out.append(",")
        elif pos != end - 1:
            out.append("][")
    out.append("]")
    return "".join(out)


def _cfa_pattern(v: Values) -> str | None:
    x = v.get(0xA302)
    raw = None if x is None else x.get_byte_array()
    if raw is None:
        return None
    signed = [b - 256 if b >= 128 else b for b in raw]
    if len(raw) < 4:
        return _format_cfa(signed)
    ret = [0] * (len(raw) - 2)
    a, b = int.from_bytes(raw[0:2], "big", signed=True), int.from_bytes(raw[2:4], "big", signed=True)
    ok = True
    if 2 + a * b > len(raw):
        a, b = int.from_bytes(raw[0:2], "little", signed=True), int.from_bytes(raw[2:4], "little", signed=True)
        ok = len(raw) >= 2 + a * b
    if ok:
        ret[0], ret[1] = a, b
        ret[2:] = signed[4:]
    return _format_cfa(ret)


def _cfa_pattern_2(v: Values) -> str | None:
    x = v.get(0x828E)
    raw = None if x is None else x.get_byte_array()
    if raw is None:
        return None
    dim = v.get(0x828D)
    rep = None if dim is None else dim.get_int_array()
    if rep is None:
        return f"Repeat Pattern not found for CFAPattern ({default_description(v, 0x828E)})"
    if len(rep) == 2 and len(raw) == rep[0] * rep[1]:
        return _format_cfa([rep[0], rep[1], *raw])
    return f"Unknown Pattern ({default_description(v, 0x828E)})"


def _focal_plane_resolution(v: Values, tag: int) -> str | None:
    r = _rational(v, tag)
    if r is None:
        return None
    unit = indexed(v, 0xA210, 1, "(No unit)", "Inches", "cm")
    return r.reciprocal().simple_string(True) + ("" if unit is None else " " + unit.lower())


def _aperture(v: Values, tag: int) -> str | None:
    x = v.get(tag)
    a = None if x is None else x.get_double()
    if a is None:
        return None
    try:
        f = math.pow(math.sqrt(2.0), a)
    except OverflowError:
        f = math.inf
    return fstop(f)


def _rational_unknown(v: Values, tag: int, fmt: Callable[[float], str], check_num: bool = False) -> str | None:
    r = _rational(v, tag)
    if r is None:
        return None
    if (r.num if check_num else r.den) == 0xFFFFFFFF:
        return "Unknown"
    return fmt(r.double_value())


def _subject_distance(v: Values) -> str | None:
    r = _rational(v, 0x9206)
    if r is None:
        return None
    if r.num == 0xFFFFFFFF:
        return "Infinity"
    if r.num == 0:
        return "Unknown"
    return decimal_format(r.double_value(), 3, min_frac=1) + " metres"


def _compressed_bpp(v: Values) -> str | None:
    r = _rational(v, 0x9102)
    if r is None:
        return None
    s = r.simple_string(True)
    return s + (" bit/pixel" if r.is_integer() and r.int_value() == 1 else " bits/pixel")


def _digital_zoom(v: Values) -> str | None:
    r = _rational(v, 0xA404)
    if r is None:
        return None
    return "Digital zoom not used" if r.num == 0 else decimal_format(r.double_value(), 1)


def _focal_35(v: Values) -> str | None:
    i = _integer(v, 0xA405)
    if i is None:
        return None
    return "Unknown" if i == 0 else focal_length(float(i))


def _sample_format(v: Values) -> str | None:
    x = v.get(0x0153)
    arr = None if x is None else x.get_int_array()
    if arr is None:
        return None
    names = {1: "Unsigned", 2: "Signed", 3: "Float", 4: "Undefined", 5: "Complex int", 6: "Complex float"}
    return ", ".join(names.get(i, f"Unknown ({i})") for i in arr)


def _exif_image_size(v: Values, tag: int) -> str | None:
    i = _integer(v, tag)
    return None if i is None else f"{i} pixels"


def _iso(v: Values) -> str | None:
    i = _integer(v, 0x8827)
    return None if i is None else str(i)


def _exposure_bias(v: Values) -> str | None:
    r = _rational(v, 0x9204)
    return None if r is None else r.simple_string(True) + " EV"


def _fnumber(v: Values) -> str | None:
    r = _rational(v, 0x829D)
    return None if r is None else fstop(r.double_value())


def _focal_length_tag(v: Values) -> str | None:
    r = _rational(v, 0x920A)
    return None if r is None else focal_length(r.double_value())


def _color_space(v: Values) -> str | None:
    i = _integer(v, 0xA001)
    if i is None:
        return None
    return "sRGB" if i == 1 else "Undefined" if i == 65535 else f"Unknown ({i})"


def _brightness(v: Values) -> str | None:
    return _rational_unknown(v, 0x9203, lambda d: decimal_format(d, 3, min_frac=1), check_num=True)


EXIF_RULES: dict[int, Callable[[Values], str | None]] = {
    0x0001: _interop_index,
    0x0002: lambda v: version_bytes(v, 0x0002, 2),
    0x00FE: lambda v: indexed(v, 0x00FE, 0, "Full-resolution image", "Reduced-resolution image",
                              "Single page of multi-page image", "Single page of multi-page reduced-resolution image",
                              "Transparency mask", "Transparency mask of reduced-resolution image",
                              "Transparency mask of multi-page image",
                              "Transparency mask of reduced-resolution multi-page image"),
    0x00FF: lambda v: indexed(v, 0x00FF, 1, "Full-resolution image", "Reduced-resolution image",
                              "Single page of multi-page image"),
    0x0100: lambda v: _with_suffix(v, 0x0100, " pixels"),
    0x0101: lambda v: _with_suffix(v, 0x0101, " pixels"),
    0x0102: lambda v: _with_suffix(v, 0x0102, " bits/component/pixel"),
    0x0103: lambda v: _lookup(v, 0x0103, _COMPRESSION),
    0x0106: _photometric,
    0x0107: lambda v: indexed(v, 0x0107, 1, "No dithering or halftoning", "Ordered dither or halftone",
                              "Randomized dither"),
    0x010A: lambda v: indexed(v, 0x010A, 1, "Normal", "Reversed"),
    0x0112: lambda v: orientation(v, 0x0112),
    0x0115: lambda v: _with_suffix(v, 0x0115, " samples/pixel"),
    0x0116: lambda v: _with_suffix(v, 0x0116, " rows/strip"),
    0x0117: lambda v: _with_suffix(v, 0x0117, " bytes"),
    0x011A: lambda v: _resolution(v, 0x011A),
    0x011B: lambda v: _resolution(v, 0x011B),
    0x011C: lambda v: indexed(v, 0x011C, 1, "Chunky (contiguous for each subsampling pixel)",
                              "Separate (Y-plane/Cb-plane/Cr-plane format)"),
    0x0128: _resolution_unit,
    0x0152: lambda v: indexed(v, 0x0152, 0, "Unspecified", "Associated alpha", "Unassociated alpha"),
    0x0153: _sample_format,
    0x0200: lambda v: _lookup(v, 0x0200, {1: "Baseline", 14: "Lossless"}),
    0x0212: _ycbcr_subsampling,
    0x0213: lambda v: indexed(v, 0x0213, 1, "Center of pixel array", "Datum point"),
    0x0214: _reference_black_white,
    0x828E: _cfa_pattern_2,
    0x829A: lambda v: _with_suffix(v, 0x829A, " sec"),
    0x829D: _fnumber,
    0x8822: lambda v: indexed(v, 0x8822, 1, "Manual control", "Program normal", "Aperture priority",
                              "Shutter priority", "Program creative (slow program)",
                              "Program action (high-speed program)", "Portrait mode", "Landscape mode"),
    0x8827: _iso,
    0x8830: lambda v: indexed(v, 0x8830, 0, "Unknown", "Standard Output Sensitivity", "Recommended Exposure Index",
                              "ISO Speed", "Standard Output Sensitivity and Recommended Exposure Index",
                              "Standard Output Sensitivity and ISO Speed", "Recommended Exposure Index and ISO Speed",
                              "Standard Output Sensitivity, Recommended Exposure Index and ISO Speed"),
    0x9000: lambda v: version_bytes(v, 0x9000, 2),
    0x9101: _components,
    0x9102: _compressed_bpp,
    0x9201: lambda v: shutter_speed(v, 0x9201),
    0x9202: lambda v: _aperture(v, 0x9202),
    0x9203: _brightness,
    0x9204: _exposure_bias,
    0x9205: lambda v: _aperture(v, 0x9205),
    0x9206: _subject_distance,
    0x9207: lambda v: _lookup(v, 0x9207, _METERING),
    0x9208: lambda v: _lookup(v, 0x9208, _LIGHT_SOURCE),
    0x9209: _flash,
    0x920A: _focal_length_tag,
    0x9286: lambda v: encoded_text(v, 0x9286),
    0x9400: lambda v: _rational_unknown(v, 0x9400, lambda d: decimal_format(d, 1, min_frac=1) + " \u00b0C"),
    0x9401: lambda v: _rational_unknown(v, 0x9401, lambda d: decimal_format(d, 1, min_frac=1) + " %"),
    0x9402: lambda v: _rational_unknown(v, 0x9402, lambda d: decimal_format(d, 1, min_frac=1) + " hPa"),
    0x9403: lambda v: _rational_unknown(v, 0x9403, lambda d: decimal_format(d, 3, min_frac=1) + " metres"),
    0x9404: lambda v: _rational_unknown(v, 0x9404, lambda d: decimal_format(d, 3, min_frac=1) + " mGal"),
    0x9405: lambda v: _rational_unknown(v, 0x9405, lambda d: decimal_format(d, 2) + " degrees"),
    0x9C9B: lambda v: unicode_text(v, 0x9C9B),
    0x9C9C: lambda v: unicode_text(v, 0x9C9C),
    0x9C9D: lambda v: unicode_text(v, 0x9C9D),
    0x9C9E: lambda v: unicode_text(v, 0x9C9E),
    0x9C9F: lambda v: unicode_text(v, 0x9C9F),
    0xA000: lambda v: version_bytes(v, 0xA000, 2),
    0xA001: _color_space,
    0xA002: lambda v: _exif_image_size(v, 0xA002),
    0xA003: lambda v: _exif_image_size(v, 0xA003),
    0xA20E: lambda v: _focal_plane_resolution(v, 0xA20E),
    0xA20F: lambda v: _focal_plane_resolution(v, 0xA20F),
    0xA210: lambda v: indexed(v, 0xA210, 1, "(No unit)", "Inches", "cm"),
    0xA217: lambda v: indexed(v, 0xA217, 1, "(Not defined)", "One-chip color area sensor",
                              "Two-chip color area sensor", "Three-chip color area sensor",
                              "Color sequential area sensor", None, "Trilinear sensor",
                              "Color sequential linear sensor"),
    0xA300: lambda v: indexed(v, 0xA300, 1, "Film Scanner", "Reflection Print Scanner", "Digital Still Camera (DSC)"),
    0xA301: lambda v: indexed(v, 0xA301, 1, "Directly photographed image"),
    0xA302: _cfa_pattern,
    0xA401: lambda v: indexed(v, 0xA401, 0, "Normal process", "Custom process"),
    0xA402: lambda v: indexed(v, 0xA402, 0, "Auto exposure", "Manual exposure", "Auto bracket"),
    0xA403: lambda v: indexed(v, 0xA403, 0, "Auto white balance", "Manual white balance"),
    0xA404: _digital_zoom,
    0xA405: _focal_35,
    0xA406: lambda v: indexed(v, 0xA406, 0, "Standard", "Landscape", "Portrait", "Night scene"),
    0xA407: lambda v: indexed(v, 0xA407, 0, "None", "Low gain up", "Low gain down", "High gain up", "High gain down"),
    0xA408: lambda v: indexed(v, 0xA408, 0, "None", "Soft", "Hard"),
    0xA409: lambda v: indexed(v, 0xA409, 0, "None", "Low saturation", "High saturation"),
    0xA40A: lambda v: indexed(v, 0xA40A, 0, "None", "Low", "Hard"),
    0xA40C: lambda v: indexed(v, 0xA40C, 0, "Unknown", "Macro", "Close view", "Distant view"),
    0xA432: lambda v: lens_specification(v, 0xA432),
}  # fmt: skip

THUMBNAIL_RULES: dict[int, Callable[[Values], str | None]] = {
    **EXIF_RULES,
    0x0201: lambda v: _with_suffix(v, 0x0201, " bytes"),
    0x0202: lambda v: _with_suffix(v, 0x0202, " bytes"),
}


# -- GpsDescriptor ----------------------------------------------------------------------------------------------


def _dms_to_decimal(vals: tuple[Rational, ...], negative: bool) -> float | None:
    d = abs(vals[0].double_value()) + vals[1].double_value() / 60.0 + vals[2].double_value() / 3600.0
    if math.isnan(d):
        return None
    return -d if negative else d


def _decimal_to_dms(decimal: float) -> str:
    """`GeoLocation.decimalToDegreesMinutesSecondsString`: `41° 51' 10.8"`."""
    if math.isinf(decimal):
        deg: float = -2147483648 if decimal < 0 else 2147483647
        m = s = math.nan
    else:
        deg = d2i(decimal)
        m = abs(math.fmod(decimal, 1.0) * 60.0)
        s = math.fmod(m, 1.0) * 60.0
        m = float(d2i(m))
    return f"{decimal_format(float(deg), 2)}\u00b0 {decimal_format(m, 2)}' {decimal_format(s, 2)}\""


def _geo(v: Values, coord: int, ref: int, neg: str, other: tuple[int, int]) -> str | None:
    """Latitude/longitude need both coordinates to be valid, as GpsDirectory.getGeoLocation requires."""
    got = {}
    for tag_val, tag_ref, neg_letter in ((coord, ref, neg), (*other, "S" if neg == "W" else "W")):
        x = v.get(tag_val)
        arr = None if x is None else x.get_rational_array()
        r = _string(v, tag_ref)
        if arr is None or len(arr) != 3 or r is None:
            return None
        d = _dms_to_decimal(arr, r.lower() == neg_letter.lower())
        if d is None:
            return None
        got[tag_val] = d
    return _decimal_to_dms(got[coord])


def _gps_dest(v: Values, coord: int, ref: int, neg: str) -> str | None:
    x = v.get(coord)
    arr = None if x is None else x.get_rational_array()
    r = _string(v, ref)
    if arr is None or len(arr) != 3 or r is None:
        return None
    d = _dms_to_decimal(arr, r.lower() == neg.lower())
    return None if d is None else _decimal_to_dms(d)


def _gps_time(v: Values) -> str | None:
    x = v.get(0x0007)
    arr = None if x is None else x.get_rational_array()
    if arr is None:
        return None
    if len(arr) < 3:
        return None  # metadata-extractor fails on short arrays; the dump shows nothing useful
    return f"{arr[0].int_value():02d}:{arr[1].int_value():02d}:{decimal_format(arr[2].double_value(), 3, 3, 2)} UTC"


def _gps_ref(v: Values, tag: int, table: dict[str, str]) -> str | None:
    s = _string(v, tag)
    if s is None:
        return None
    t = java_trim(s)
    return table.get(t.upper(), f"Unknown ({t})")


def _gps_with_unit(v: Values, tag: int, ref_tag: int, table: dict[str, str]) -> str | None:
    r = _rational(v, tag)
    if r is None:
        return None
    unit = _gps_ref(v, ref_tag, table)
    return f"{decimal_format(r.double_value(), 2)} {'unit' if unit is None else unit.lower()}"


def _gps_direction(v: Values, tag: int) -> str | None:
    r = _rational(v, tag)
    s = decimal_format(r.double_value(), 2) if r is not None else _string(v, tag)
    if s is None or java_trim(s) == "":
        return None
    return java_trim(s) + " degrees"


_DIRECTION_REF = {"T": "True direction", "M": "Magnetic direction"}
_SPEED_REF = {"K": "km/h", "M": "mph", "N": "knots"}
_DISTANCE_REF = {"K": "kilometers", "M": "miles", "N": "knots"}

GPS_RULES: dict[int, Callable[[Values], str | None]] = {
    0x0000: lambda v: version_bytes(v, 0x0000, 1),
    0x0002: lambda v: _geo(v, 0x0002, 0x0001, "S", (0x0004, 0x0003)),
    0x0004: lambda v: _geo(v, 0x0004, 0x0003, "W", (0x0002, 0x0001)),
    0x0005: lambda v: indexed(v, 0x0005, 0, "Sea level", "Below sea level"),
    0x0006: lambda v: (lambda r: None if r is None else decimal_format(r.double_value(), 2) + " metres")(_rational(v, 6)),
    0x0007: _gps_time,
    0x0009: lambda v: _gps_ref(v, 0x0009, {"A": "Active (Measurement in progress)",
                                           "V": "Void (Measurement Interoperability)"}),
    0x000A: lambda v: _gps_ref(v, 0x000A, {"2": "2-dimensional measurement", "3": "3-dimensional measurement"}),
    0x000B: lambda v: (lambda r: None if r is None else decimal_format(r.double_value(), 2))(_rational(v, 0x000B)),
    0x000C: lambda v: _gps_ref(v, 0x000C, _SPEED_REF),
    0x000D: lambda v: _gps_with_unit(v, 0x000D, 0x000C, _SPEED_REF),
    0x000E: lambda v: _gps_ref(v, 0x000E, _DIRECTION_REF),
    0x000F: lambda v: _gps_direction(v, 0x000F),
    0x0010: lambda v: _gps_ref(v, 0x0010, _DIRECTION_REF),
    0x0011: lambda v: _gps_direction(v, 0x0011),
    0x0014: lambda v: _gps_dest(v, 0x0014, 0x0013, "S"),
    # metadata-extractor describes GPS Dest Longitude from the GPS Longitude tags (a bug kept for parity)
    0x0016: lambda v: _gps_dest(v, 0x0004, 0x0003, "W"),
    0x0017: lambda v: _gps_ref(v, 0x0017, _DIRECTION_REF),
    0x0018: lambda v: _gps_direction(v, 0x0018),
    0x0019: lambda v: _gps_ref(v, 0x0019, _DISTANCE_REF),
    0x001A: lambda v: _gps_with_unit(v, 0x001A, 0x0019, _DISTANCE_REF),
    0x001B: lambda v: encoded_text(v, 0x001B),
    0x001C: lambda v: encoded_text(v, 0x001C),
    0x001E: lambda v: indexed(v, 0x001E, 0, "No Correction", "Differential Corrected"),
    0x001F: lambda v: (lambda r: None if r is None else decimal_format(r.double_value(), 2) + " metres")(_rational(v, 0x1F)),
}  # fmt: skip

DIRECTORY_RULES: dict[str, dict[int, Callable[[Values], str | None]]] = {
    T.IFD0: EXIF_RULES,
    T.SUBIFD: EXIF_RULES,
    T.INTEROP: EXIF_RULES,
    T.IMAGE: EXIF_RULES,
    T.THUMBNAIL: THUMBNAIL_RULES,
    T.GPS: GPS_RULES,
}


def describe(directory: str, values: Values, tag: int) -> str | None:
    """The description metadata-extractor gives tag `tag` of `directory` (None: its descriptor returns null)."""
    rule = DIRECTORY_RULES.get(directory, {}).get(tag)
    s = rule(values) if rule is not None else default_description(values, tag)
    return None if s is None else clean_text(s)
