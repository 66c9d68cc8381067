#!/usr/bin/env bash
# Regenerates exif_jax/assets/quickstart/photos/ (the photos `exif-jax quickstart` trains on) and its SOURCES.md.
#
# Each photo is a lossless 384x384 crop of a real camera JPEG from the shared data folder, made with
# `jpegtran -crop 384x384+X+Y -copy all`: the DCT coefficients, quantization tables and every APPn segment
# (EXIF with maker notes and thumbnail) are kept bit for bit; only the entropy coding is redone. The EXIF
# width/height tags therefore still describe the original frame, not the crop.
# Only the `metadata_extractor` and `digicam_cc0` folders may be copied into this repository (see
# ../shared/data/README.md); this script refuses any other source.
#
# usage: launch/make_quickstart_data.sh [--dry-run]
#   SHARED_DATA   folder with photos_dev/ (default: <repo>/../shared/data)
#   OUT           output folder (default: <repo>/exif_jax/assets/quickstart/photos)
#   CROP          crop side in pixels, a multiple of 16 (default: 384)
#   MULTI_OUT     folder of the several-photos-per-camera set (default: <repo>/exif_jax/assets/quickstart/multi),
#                 lossless MULTI_CROP (256) centre crops of MULTI_PER_CAMERA (4) photos of each of MULTI_CAMERAS
#                 from photos_multi (CC0); sources in exif_jax/assets/quickstart/SOURCES_multi.md
# needs: jpegtran (Debian: apt-get install -y libjpeg-turbo-progs), python3
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SHARED_DATA="${SHARED_DATA:-$REPO/../shared/data}"
OUT="${OUT:-$REPO/exif_jax/assets/quickstart/photos}"
MULTI_OUT="${MULTI_OUT:-$REPO/exif_jax/assets/quickstart/multi}"
MULTI_CROP="${MULTI_CROP:-256}"
MULTI_PER_CAMERA="${MULTI_PER_CAMERA:-4}"
# Cameras of photos_multi (CC0) bundled with several photos each, so the quickstart learns real camera traces.
MULTI_CAMERAS="${MULTI_CAMERAS:-Apple/iPhone XR|Epson/PhotoPC 3100Z|Pentax/ist DL|Panasonic/DS CAMERA|HP/Photosmart M627|Canon/PowerShot G2|Kodak/DC280|HP/Photosmart M417|Nikon/D90|Nikon/D3100|Olympus/C-3000|GoPro/Hero7Black}"
CROP="${CROP:-384}"
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run|-n) DRY_RUN=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "make_quickstart_data.sh: unknown argument '$arg' (use --dry-run or --help)" >&2; exit 2 ;;
  esac
done

die() { echo "make_quickstart_data.sh: $*" >&2; exit 1; }
[[ -d "$SHARED_DATA/photos_dev" ]] || die "$SHARED_DATA/photos_dev not found: set SHARED_DATA to the shared data folder"
((DRY_RUN)) || command -v jpegtran >/dev/null || die "jpegtran not found: apt-get install -y libjpeg-turbo-progs"
(( CROP % 16 == 0 )) || die "CROP=$CROP is not a multiple of 16 (lossless crops need iMCU-aligned sizes)"

# folder<TAB>file: 36 cameras, 36 distinct EXIF Make/Model pairs, none edited by software after capture.
SELECTION=$(cat <<'LIST'
metadata_extractor	Apple iPhone 4.jpg
metadata_extractor	Canon EOS REBEL T3i.jpg
metadata_extractor	Canon PowerShot A20.jpg
metadata_extractor	Casio EX-S1.jpg
metadata_extractor	FujiFilm FinePix2650.jpg
metadata_extractor	HTC TyTN II.jpg
metadata_extractor	Kodak DX4330.jpg
metadata_extractor	Konica Q-M100 (1).jpg
metadata_extractor	Kyocera FC-S3.jpg
metadata_extractor	Minolta DiMAGE EX.jpg
metadata_extractor	Motorola XT1068 (Moto G).jpg
metadata_extractor	Nikon E885.jpg
metadata_extractor	Nokia 3110c (Mobile Phone).jpg
metadata_extractor	Olympus E-10.jpg
metadata_extractor	Panasonic DMC-LC40.jpg
metadata_extractor	Pentax Optio 430.jpg
metadata_extractor	Reconyx HF2 Pro Covert.jpg
metadata_extractor	Ricoh DC-3Z (normal res).jpg
metadata_extractor	Samsung GT-I9000 (Galaxy S).jpg
metadata_extractor	Sony DSC-HX5V (2).jpg
digicam_cc0	Apple__iPhone_13_Pro__IMG_8568.JPG
digicam_cc0	Canon__EOS_RP___MG_0634.JPG
digicam_cc0	Canon__PowerShot_S50__IMG_1908.JPG
digicam_cc0	Epson__PhotoPC_3100Z__100EPSON__EPSN0003.JPG
digicam_cc0	GoPro__Hero7Black__GOPR8509.JPG
digicam_cc0	HP__C200__DSC00001.JPG
digicam_cc0	HP__Photosmart_M417__HPIM0006.JPG
digicam_cc0	Kodak__DC260__DC260_01__P0004797.JPG
digicam_cc0	Kodak__Z981__102KZ981__102_0009.JPG
digicam_cc0	Nikon__CoolPix_995__DSCN1325.JPG
digicam_cc0	Nikon__D3100__DSC_0003.JPG
digicam_cc0	Olympus__C-5050__PB180006.JPG
digicam_cc0	Panasonic__DS_CAMERA__DCIM__100_PANA__P1000237.JPG
digicam_cc0	Pentax__ist_DL__IMGP6669.JPG
digicam_cc0	Sony__A6400__DSC00007.JPG
digicam_cc0	Sony__SLT-A57___DSC8830.JPG
LIST
)

# Python helpers both parts below run (one copy): die(msg), jpeg_size(path) from the first SOFn marker.
PY_HELPERS=$(cat <<'PY'
def die(msg):
    sys.exit(f"make_quickstart_data.sh: {msg}")


def jpeg_size(path):
    """(width, height) from the first SOFn marker."""
    data = path.read_bytes()
    i = 2
    while i < len(data) - 9:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 2 if marker != 0xFF else 1
            continue
        seg = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + seg
    die(f"{path}: no SOF marker, not a JPEG")
PY
)
export SHARED_DATA OUT CROP DRY_RUN SELECTION MULTI_OUT MULTI_CROP MULTI_CAMERAS MULTI_PER_CAMERA PY_HELPERS
python3 - <<'PY'
import csv, hashlib, os, pathlib, re, shlex, subprocess, sys

shared = pathlib.Path(os.environ["SHARED_DATA"]).resolve()
out = pathlib.Path(os.environ["OUT"])
crop = int(os.environ["CROP"])
dry = os.environ["DRY_RUN"] == "1"
SOURCES = {  # folder -> (repository, commit, licence)
    "metadata_extractor": ("https://github.com/drewnoakes/metadata-extractor-images",
                           "4beba640487802442bc9931fb01274e908102d3a",
                           'repository README: "You are free to use these media files however you wish."'),
    "digicam_cc0": ("https://github.com/drewnoakes/digicam_corpus",
                    "6385e5eacf2dd242ff71e5828ff56ed691bfdc77", "CC0-1.0"),
}


exec(os.environ["PY_HELPERS"])  # die(), jpeg_size()


rows = []
for line in os.environ["SELECTION"].strip().splitlines():
    folder, name = line.split("\t")
    if folder not in SOURCES:
        die(f"{folder}/{name}: only metadata_extractor and digicam_cc0 photos may be copied into the repository")
    base = shared / "photos_dev" / folder
    src = base / "images" / name if (base / "images").is_dir() else base / name
    if not src.is_file():
        die(f"{src} is missing")
    manifest = {r["file"]: r for r in csv.DictReader(open(base / "manifest.csv", encoding="utf-8"))}
    if name not in manifest:
        die(f"{name} is not in {base / 'manifest.csv'}")
    w, h = jpeg_size(src)
    if min(w, h) < crop:
        die(f"{src} is {w}x{h}, smaller than the {crop}x{crop} crop")
    x, y = (w - crop) // 2 // 16 * 16, (h - crop) // 2 // 16 * 16
    dst_name = re.sub(r"[^A-Za-z0-9._-]+", "_", pathlib.Path(name).stem).strip("_") + ".jpg"
    rows.append((folder, name, src, manifest[name], w, h, x, y, dst_name))

if len({r[-1] for r in rows}) != len(rows):
    die("two photos map to the same output name")
cmds = [["jpegtran", "-crop", f"{crop}x{crop}+{x}+{y}", "-copy", "all", "-outfile", str(out / d), str(s)]
        for (_, _, s, _, _, _, x, y, d) in rows]
if dry:
    print(f"would write {len(rows)} photos and SOURCES.md to {out}")
    for c in cmds:
        print(" ".join(shlex.quote(a) for a in c))
    sys.exit(0)

out.mkdir(parents=True, exist_ok=True)
for old in out.glob("*.jpg"):
    old.unlink()
for c, row in zip(cmds, rows):
    subprocess.run(c, check=True)
    got = jpeg_size(out / row[-1])
    if got != (crop, crop):
        die(f"{out / row[-1]}: jpegtran produced {got[0]}x{got[1]}, expected {crop}x{crop}")

lines = [
    "# Quickstart photos: sources and licences",
    "",
    f"{len(rows)} lossless {crop}x{crop} crops of real camera JPEGs, regenerated by `launch/make_quickstart_data.sh`",
    f"(`jpegtran -crop {crop}x{crop}+X+Y -copy all`, libjpeg-turbo). DCT coefficients, quantization tables and all",
    "APPn segments (EXIF including maker notes and thumbnails) are unchanged; only the Huffman coding is redone.",
    "The EXIF image width/height tags still describe the original frame, not the crop: this is expected.",
    "",
    "| file | source repository @ commit | source file | licence | EXIF Make / Model | original size | crop (WxH+X+Y) | source sha256 |",
    "|---|---|---|---|---|---|---|---|",
]
total = 0
for folder, name, src, m, w, h, x, y, d in rows:
    repo, commit, lic = SOURCES[folder]
    total += (out / d).stat().st_size
    sha = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    lines.append(f"| `{d}` | {repo} @ `{commit[:12]}` | `{m['source_path']}` | {lic} | {m['Make']} / {m['Model']} "
                 f"| {w}x{h} | {crop}x{crop}+{x}+{y} | `{sha}` |")
lines += ["", f"Total: {total:,} bytes.", ""]
(out.parent / "SOURCES.md").write_text("\n".join(lines), encoding="utf-8")
print(f"wrote {len(rows)} photos ({total:,} bytes) and {out.parent / 'SOURCES.md'}")
PY

python3 - <<'PY'
# Part 2: several photos per camera from photos_multi (CC0), lossless centre crops.
import csv, hashlib, os, pathlib, re, subprocess, sys

shared = pathlib.Path(os.environ["SHARED_DATA"]).resolve() / "photos_multi"
out = pathlib.Path(os.environ["MULTI_OUT"])
crop, per = int(os.environ["MULTI_CROP"]), int(os.environ["MULTI_PER_CAMERA"])
cameras = os.environ["MULTI_CAMERAS"].split("|")
dry = os.environ["DRY_RUN"] == "1"
REPO, COMMIT = "https://github.com/drewnoakes/digicam_corpus", "6385e5eacf2dd242ff71e5828ff56ed691bfdc77"
exec(os.environ["PY_HELPERS"])  # die(), jpeg_size()
if not (shared / "manifest.tsv").is_file():
    sys.exit(f"make_quickstart_data.sh: {shared}/manifest.tsv not found")
rows = list(csv.DictReader(open(shared / "manifest.tsv", encoding="utf-8"), delimiter="\t"))
picked = []
for cam in cameras:
    files = sorted((r for r in rows if r["camera"] == cam and (shared / r["file"]).is_file()),
                   key=lambda r: r["file"])[:per]
    if len(files) < per:
        sys.exit(f"make_quickstart_data.sh: {cam}: {len(files)} photos in {shared}, need {per}")
    picked += files




if dry:
    print(f"would write {len(picked)} photos of {len(cameras)} cameras to {out}")
    sys.exit(0)
out.mkdir(parents=True, exist_ok=True)
for old in out.glob("*.jpg"):
    old.unlink()
lines = ["# Quickstart multi-photo set: sources and licences", "",
         f"{len(picked)} lossless {crop}x{crop} centre crops ({per} photos of each of {len(cameras)} cameras) of the",
         "CC0 photos in `../shared/data/photos_multi` (themselves lossless crops of the digicam_corpus originals),",
         "regenerated by `launch/make_quickstart_data.sh` (`jpegtran -crop -copy all`): DCT coefficients, quantization",
         "tables and EXIF are the camera's own.", "",
         "| file | source repository @ commit | source file | licence | camera | original size | crop (WxH+X+Y) | source sha256 |",
         "|---|---|---|---|---|---|---|---|"]
total = 0
for r in picked:
    src = shared / r["file"]
    w, h = jpeg_size(src)
    x, y = (w - crop) // 2 // 16 * 16, (h - crop) // 2 // 16 * 16
    dst = out / (re.sub(r"[^A-Za-z0-9._-]+", "_", pathlib.Path(r["file"]).stem).strip("_") + ".jpg")
    subprocess.run(["jpegtran", "-crop", f"{crop}x{crop}+{x}+{y}", "-copy", "all", "-outfile", str(dst), str(src)],
                   check=True)
    if jpeg_size(dst) != (crop, crop):
        sys.exit(f"make_quickstart_data.sh: {dst}: jpegtran produced {jpeg_size(dst)}, expected {crop}x{crop}")
    total += dst.stat().st_size
    lines.append(f"| `{dst.name}` | {REPO} @ `{COMMIT[:12]}` | `{r['source_path']}` | CC0-1.0 | {r['camera']} "
                 f"| {w}x{h} | {crop}x{crop}+{x}+{y} | `{r['source_sha256'][:16]}` |")
lines += ["", f"Total: {total:,} bytes.", ""]
(out.parent / "SOURCES_multi.md").write_text("\n".join(lines), encoding="utf-8")
print(f"wrote {len(picked)} photos ({total:,} bytes) and {out.parent / 'SOURCES_multi.md'}")
PY
