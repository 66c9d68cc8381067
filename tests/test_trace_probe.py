"""eval.trace_probe: the supervised per-filter camera classifier (a tiny run on synthetic cameras) and its usage
errors."""
import io

import numpy as np
from PIL import Image

from eval import trace_probe


def _jpeg(rgb):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _photos(n, seed):
    """Smooth random 'content' (low-frequency colour fields) through two 'cameras': one adds strong sensor-like
    noise, the other none. Content is drawn independently of the camera."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        base = rng.uniform(40, 215, size=(4, 4, 3))
        img = np.asarray(Image.fromarray(base.astype(np.uint8)).resize((128, 128), Image.BICUBIC), np.float32)
        cam = "noisy" if i % 2 else "clean"
        if cam == "noisy":
            img = img + rng.normal(0, 12, img.shape)
        out.append({"image": _jpeg(np.clip(img, 0, 255).astype(np.uint8)), "model": cam})
    return out


def test_highpass_probe_separates_noise_traces_on_new_content():
    res = trace_probe.probe(_photos(12, 0), _photos(8, 1), "highpass", steps=30, batch=12, log=lambda m: None)
    assert res["classes"] == 2 and res["held_out_photos"] == 8 and res["chance"] == 0.5
    assert res["photo_top1"] >= 0.875 and res["crop_top1"] >= 0.8, res


def test_usage_errors(tmp_path, capsys):
    assert trace_probe.main(["--workdir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a quickstart workdir" in capsys.readouterr().err
