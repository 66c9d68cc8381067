"""hf / safetensors exports against transformers and torchvision: a JAX model exported with `exif-jax export` loads
into `CLIPVisionModelWithProjection` / `DistilBertModel.from_pretrained` / torchvision ResNet-50 and gives the same
embeddings; exports read back bit-identically; scanned and unscanned layouts share one file format."""
import json

import numpy as np
import pytest
import torch
from flax import nnx
from PIL import Image

import exif_jax
from exif_jax.commands import export as export_cmd
from exif_jax.convert import export_hf, save_safetensors, to_torch_state
from exif_jax.convert.mapping import random_model
from exif_jax.convert.torch_reference import ExifClipTorch
from exif_jax.models import build_model, tiny_model_config
from exif_jax.inference import ExifModel
from exif_jax.models.preprocess import normalize_images_np

TEXTS = ["Make: Canon Model: Canon EOS 7D Exposure Time: 1/200 sec F-Number: f/5.6",
         "Make: Apple Model: iPhone 5 ISO Speed Ratings: 50", "Make: NIKON"]


def patches(shared_data, size, n=3):
    root = shared_data / "photos_dev" / "digicam_cc0"
    files = sorted(root.rglob("*.JPG")) + sorted(root.rglob("*.jpg"))
    out = []
    for f in files[:n]:
        with Image.open(f) as im:
            im.draft("RGB", (im.width // 8, im.height // 8))
            a = np.asarray(im.convert("RGB"))
        out.append(a[:size, :size])
    return np.stack(out)


def rel_err(a, b):
    return float(np.max(np.abs(a - b) / np.linalg.norm(b, axis=-1, keepdims=True)))


def torch_text(tm, model):
    enc = model.tokenizer.encode(TEXTS)
    ids, mask = (torch.from_numpy(enc[k]).long() for k in ("input_ids", "attention_mask"))
    with torch.no_grad():
        return tm.encode_text(ids, mask).numpy()


def assert_same_state(a, b):
    sa, sb = to_torch_state(a), to_torch_state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_vit_hf_export_loads_in_transformers(shared_data, tmp_path, act):
    from transformers import CLIPVisionModelWithProjection, DistilBertModel

    cfg = tiny_model_config("vit", **{"vit.act": act, "text_projection": True, "embed_dim": 48})
    model = ExifModel(build_model(cfg, nnx.Rngs(3)), cfg)
    export_hf(model.model, cfg, tmp_path / "hf")
    vision, info_v = CLIPVisionModelWithProjection.from_pretrained(tmp_path / "hf" / "vision",
                                                                   output_loading_info=True)
    text, info_t = DistilBertModel.from_pretrained(tmp_path / "hf" / "text", output_loading_info=True)
    for info in (info_v, info_t):  # strict: every key used, none left at random init
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    vision.eval()
    assert vision.config.hidden_act == act and vision.config.projection_dim == 48
    x = patches(shared_data, 32)
    with torch.no_grad():
        ref = vision(pixel_values=torch.from_numpy(normalize_images_np(x)).permute(0, 3, 1, 2)).image_embeds.numpy()
    assert rel_err(model.encode_images(x), ref) <= 1e-5
    tm = ExifClipTorch.from_hf_export(tmp_path / "hf")
    assert tm.transformer.config.n_layers == text.config.n_layers == 2
    assert rel_err(model.encode_texts(TEXTS), torch_text(tm, model)) <= 1e-5
    back = exif_jax.load(tmp_path / "hf")
    assert_same_state(model.model, back.model)


@pytest.mark.parametrize("image_filter", ["none", "highpass", "rgb+highpass"])
def test_resnet_hf_export_joint_recipe(shared_data, tmp_path, image_filter):
    """ResNet tower + projections + learned logit scale (+ the fixed input filter) through the hf directory and the
    torch recipe."""
    cfg = tiny_model_config("resnet50", **{"text_projection": True, "image_projection": True, "embed_dim": 32,
                                           "logit_scale.learn": True, "logit_scale.init": 20.0,
                                           "image_filter": image_filter})
    net = random_model(lambda: build_model(cfg, nnx.Rngs(1)), seed=1)
    net.log_scale.set_value(np.log(np.float32(20.0)))
    model = ExifModel(net, cfg)
    export_hf(model.model, cfg, tmp_path / "hf")
    meta = json.loads((tmp_path / "hf" / "exif_jax_config.json").read_text())
    assert meta["model_config"]["image_tower"] == "resnet50"
    assert meta["model_config"]["image_filter"] == image_filter
    tm = ExifClipTorch.from_hf_export(tmp_path / "hf")
    assert tm.logit_scale == pytest.approx(20.0, rel=1e-6)
    x = patches(shared_data, 64, n=2)
    with torch.no_grad():
        ref = tm.encode_image(torch.from_numpy(normalize_images_np(x)).permute(0, 3, 1, 2)).numpy()
    assert rel_err(model.encode_images(x), ref) <= 1e-4
    assert rel_err(model.encode_texts(TEXTS), torch_text(tm, model)) <= 1e-5
    assert_same_state(model.model, exif_jax.load(tmp_path / "hf").model)


def test_safetensors_scan_and_unscanned_share_format(tmp_path):
    """A scanned ViT+text model saved to .safetensors loads unscanned (and back) with identical embeddings."""
    cfg = tiny_model_config("vit", scan_layers=True, remat=True)
    scanned = build_model(cfg, nnx.Rngs(5))
    assert scanned.transformer.transformer.layer.attention.q_lin.kernel.get_value().shape == (2, 64, 64)
    path = save_safetensors(scanned, cfg, tmp_path / "m.safetensors")
    flat = exif_jax.load(path, scan_layers=False, remat=False)
    assert isinstance(flat.model.transformer.transformer.layer, nnx.List)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    ref = ExifModel(scanned, cfg, batch_size=2)  # 3 images: one full batch + one padded batch
    np.testing.assert_allclose(flat.encode_images(imgs), ref.encode_images(imgs), atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(flat.encode_texts(TEXTS), ref.encode_texts(TEXTS), atol=2e-5, rtol=1e-5)
    assert_same_state(scanned, exif_jax.load(path).model)


def test_export_cli_formats_and_errors(tmp_path, capsys):
    cfg = tiny_model_config("resnet50")
    src = save_safetensors(random_model(lambda: build_model(cfg, nnx.Rngs(2)), seed=2), cfg,
                           tmp_path / "src.safetensors")
    assert export_cmd.main(["--weights", str(src), "--format", "original", "--out", str(tmp_path / "o.pth")]) == 0
    assert export_cmd.main(["--weights", str(tmp_path / "o.pth"), "--format", "safetensors",
                            "--out", str(tmp_path / "back.safetensors")]) == 0
    assert "wrote safetensors" in capsys.readouterr().out
    a, b = exif_jax.load(src).model, exif_jax.load(tmp_path / "back.safetensors").model
    assert_same_state(a, b)
    # An --out that cannot be an hf directory and a missing --weights are usage errors (exit 2); weights that cannot
    # take the requested format: exit 1. Each is one line naming the file.
    assert export_cmd.main(["--weights", str(src), "--format", "hf", "--out", str(tmp_path / "o.pth")]) == 2
    err = capsys.readouterr().err
    assert "o.pth" in err and "not a directory" in err and len(err.strip().splitlines()) == 1
    assert export_cmd.main(["--weights", str(tmp_path / "nope.pth"), "--format", "hf",
                            "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "nope.pth" in err and len(err.strip().splitlines()) == 1
    vit_cfg = tiny_model_config("vit")
    vit_src = save_safetensors(build_model(vit_cfg, nnx.Rngs(0)), vit_cfg, tmp_path / "vit.safetensors")
    assert export_cmd.main(["--weights", str(vit_src), "--format", "original", "--out", str(tmp_path / "v.pth")]) == 1
    assert "ResNet-50" in capsys.readouterr().err
