"""Full-size parity: random torchvision ResNet-50 (fc 2048->768) + transformers DistilBertModel (distilbert-base
config) in the original `EXIFNet` layout -> `.pth` -> `exif_jax.load` -> embeddings of real photo patches and real
EXIF texts equal torch's (fp32, eval-mode BatchNorm), and JAX -> `.pth` -> JAX is bit-identical.
"""
import math

import numpy as np
import pytest
import torch
from PIL import Image

import exif_jax
from exif_jax.convert import export_original, to_torch_state
from exif_jax.convert.torch_reference import CLIP_LEFTOVER_SHAPES, ExifNetTorch
from exif_jax.exif.reader import read_exif_file
from exif_jax.models.preprocess import normalize_images_np
from exif_jax.text.tokenizer import ExifTokenizer

PHOTOS = ["Canon EOS 7D.jpg", "Apple iPhone 5.jpg", "Canon PowerShot G11.jpg"]


def real_patches(shared_data, size=124):
    """Four size x size uint8 crops of real camera photos (corner and centre crops)."""
    root = shared_data / "photos_dev" / "metadata_extractor" / "images"
    out = []
    for name in PHOTOS:
        with Image.open(root / name) as im:
            im.draft("RGB", (im.width // 4, im.height // 4))
            a = np.asarray(im.convert("RGB"))
        h, w = a.shape[:2]
        out.append(a[(h - size) // 2:(h - size) // 2 + size, (w - size) // 2:(w - size) // 2 + size])
        if len(out) == 1:
            out.append(a[:size, :size])
    return np.stack(out)


def real_texts(shared_data):
    root = shared_data / "photos_dev" / "metadata_extractor" / "images"
    texts = []
    for name in PHOTOS:
        items = read_exif_file(root / name)
        texts.append(" ".join(f"{tag}: {desc}" for _, tag, desc in items[:12]))
    texts.append("Make: Canon")  # short text: most of its bucket is padding
    return texts


def rel_err(a, b):
    return float(np.max(np.abs(a - b) / np.linalg.norm(b, axis=-1, keepdims=True)))


@pytest.fixture(scope="module")
def torch_net():
    torch.manual_seed(0)
    net = ExifNetTorch()
    # Non-trivial BatchNorm statistics, so eval mode is really tested.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return net.eval()


@pytest.fixture(scope="module")
def loaded(torch_net, tmp_path_factory):
    path = tmp_path_factory.mktemp("orig") / "wrapper.pth"
    torch.save({"model": torch_net.state_dict()}, path)
    return path, exif_jax.load(path)


def test_original_pth_embeddings_match_torch(shared_data, torch_net, loaded):
    _, model = loaded
    assert model.config.embed_dim == 768 and model.config.text.n_layers == 6 and model.config.text.n_heads == 12
    assert model.logit_scale() == pytest.approx(100.0)
    patches = real_patches(shared_data)
    texts = real_texts(shared_data)
    with torch.no_grad():
        x = torch.from_numpy(normalize_images_np(patches)).permute(0, 3, 1, 2)
        ref_img = torch_net.encode_image(x).numpy()
        enc = ExifTokenizer().encode(texts)
        ref_txt = torch_net.encode_text(torch.from_numpy(enc["input_ids"]).long(),
                                        torch.from_numpy(enc["attention_mask"]).long()).numpy()
    img = model.encode_images(patches)
    txt = model.encode_texts(texts)
    assert img.dtype == np.float32 and img.shape == (4, 768) and txt.shape == (4, 768)
    assert rel_err(img, ref_img) <= 1e-4
    assert rel_err(txt, ref_txt) <= 1e-4
    # Bucketed padding (32/64/...) equals padding to 512 (what the original did).
    enc512 = ExifTokenizer().encode(texts, max_len=512)
    assert enc512["input_ids"].shape[1] == 512 and enc["input_ids"].shape[1] < 512
    np.testing.assert_allclose(model.encode_tokens(enc512["input_ids"], enc512["attention_mask"]), txt,
                               atol=1e-5, rtol=0)


def test_export_original_roundtrip_bit_identical_and_strict_torch_load(tmp_path, torch_net, loaded):
    src, model = loaded
    out = tmp_path / "export.pth"
    export_original(model.model, model.config, out)
    ckpt = torch.load(out, weights_only=True)
    sd = ckpt["model"]
    for k, shape in CLIP_LEFTOVER_SHAPES.items():
        assert tuple(sd[k].shape) == shape, k
    assert math.exp(float(sd["model.logit_scale"])) == pytest.approx(100.0)
    # Every tensor of the source checkpoint's towers comes back bit for bit (BatchNorm counters included).
    orig = torch_net.state_dict()
    tower_keys = [k for k in orig if k.startswith(("model.visual.", "model.transformer."))]
    assert set(tower_keys) == {k for k in sd if k.startswith(("model.visual.", "model.transformer."))}
    for k in tower_keys:
        assert sd[k].dtype == orig[k].dtype and torch.equal(sd[k], orig[k]), k
    fresh = ExifNetTorch()
    fresh.load_state_dict(sd, strict=True)
    again = exif_jax.load(out)
    a, b = to_torch_state(model.model), to_torch_state(again.model)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def test_train_mode_batchnorm_matches_torch(shared_data, torch_net, loaded):
    """One train-mode forward: outputs and updated running statistics equal torch's (unbiased running var)."""
    from flax import nnx

    _, model = loaded
    m = nnx.clone(model.model)
    patches = real_patches(shared_data)
    x = normalize_images_np(patches)
    net = ExifNetTorch()
    net.load_state_dict(torch_net.state_dict())
    visual = net.model.visual.train()
    with torch.no_grad():
        ref = visual(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    out = np.asarray(nnx.jit(lambda m, x: m.encode_image(x, train=True))(m, x))
    assert rel_err(out, ref) <= 1e-4
    st = to_torch_state(m)
    for name in ("bn1", "layer1.0.bn2", "layer4.2.bn3", "layer3.0.downsample.1"):
        mod = visual.get_submodule(name)
        np.testing.assert_allclose(st[f"visual.{name}.running_mean"], mod.running_mean.numpy(), atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(st[f"visual.{name}.running_var"], mod.running_var.numpy(), atol=1e-5, rtol=1e-4)
        assert int(st[f"visual.{name}.num_batches_tracked"]) == int(mod.num_batches_tracked)
