"""Initialisation from torchvision / HF DistilBERT files (as the original training started), and the one-line
errors for files that do not fit."""
import numpy as np
import pytest
import torch
from flax import nnx

import exif_jax
from exif_jax.convert import ConversionError, init_from_pretrained, load_torch_state, to_torch_state
from exif_jax.convert.mapping import random_model
from exif_jax.convert.torch_reference import distilbert_config, masked_mean
from exif_jax.models import build_model, tiny_model_config
from exif_jax.inference import ExifModel


@pytest.fixture(scope="module")
def resnet_model():
    cfg = tiny_model_config("resnet50")
    return cfg, random_model(lambda: build_model(cfg, nnx.Rngs(0)))


def test_init_from_torchvision_and_hf_distilbert(tmp_path, resnet_model):
    import torchvision
    from transformers import DistilBertForMaskedLM

    cfg, model = resnet_model
    model = nnx.clone(model)
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None)  # ImageNet layout: fc 2048 -> 1000 (ignored)
    torch.save(tv.state_dict(), tmp_path / "resnet50-imagenet.pth")
    mlm = DistilBertForMaskedLM(distilbert_config(dim=64, n_layers=2, n_heads=2, hidden_dim=128))
    mlm.save_pretrained(tmp_path / "distilbert")  # keys "distilbert.*" + MLM heads, as the hub checkpoint
    fc_before = to_torch_state(model)["visual.fc.weight"].copy()
    done = init_from_pretrained(model, resnet50=tmp_path / "resnet50-imagenet.pth",
                                distilbert=tmp_path / "distilbert")
    assert len(done) == 2
    st = to_torch_state(model)
    ref = tv.state_dict()
    for k, v in ref.items():
        if not k.startswith("fc."):
            assert np.array_equal(st["visual." + k], v.numpy()), k
    assert np.array_equal(st["visual.fc.weight"], fc_before)
    text_ref = mlm.distilbert.eval()
    for k, v in text_ref.state_dict().items():
        assert np.array_equal(st["transformer." + k], v.numpy()), k
    em = ExifModel(model, cfg)
    texts = ["Make: Canon Model: Canon EOS 20D", "F-Number: f/2.8"]
    enc = em.tokenizer.encode(texts)
    ids, mask = (torch.from_numpy(enc[k]).long() for k in ("input_ids", "attention_mask"))
    with torch.no_grad():
        ref_txt = masked_mean(text_ref(input_ids=ids, attention_mask=mask)[0], mask).numpy()
    np.testing.assert_allclose(em.encode_texts(texts), ref_txt, atol=1e-5, rtol=1e-4)


def test_mismatched_weights_name_file_and_keys(tmp_path, resnet_model):
    cfg, model = resnet_model
    state = to_torch_state(model)
    missing = dict(state)
    del missing["transformer.transformer.layer.1.ffn.lin2.weight"]
    with pytest.raises(ConversionError, match=r"w\.pth: .*1 missing keys: transformer\.transformer\.layer\.1\.ffn"):
        load_torch_state(nnx.clone(model), missing, "w.pth")
    extra = dict(state, **{"visual.layer5.0.conv1.weight": np.zeros(3)})
    with pytest.raises(ConversionError, match=r"1 unexpected keys: visual\.layer5\.0\.conv1\.weight"):
        load_torch_state(nnx.clone(model), extra, "w.pth")
    bad = dict(state, **{"visual.fc.weight": np.zeros((10, 2048), np.float32)})
    with pytest.raises(ConversionError, match=r"w\.pth: 1 shape mismatches: visual\.fc\.weight \(10, 2048\) "
                                              r"\(model wants \(64, 2048\)\)"):
        load_torch_state(nnx.clone(model), bad, "w.pth")


def test_load_rejects_unreadable_files_in_one_line(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    notorig = tmp_path / "other.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}}, notorig)
    plain = tmp_path / "plain.safetensors"
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(2, np.float32)}, str(plain))
    for path, words in [(junk, "not a readable torch checkpoint"), (notorig, "not an original"),
                        (plain, "without exif-jax metadata"), (tmp_path / "missing.pth", "no such file"),
                        (tmp_path, "neither an exif-jax hf export")]:
        with pytest.raises(ConversionError) as e:
            exif_jax.load(path)
        msg = str(e.value)
        assert str(path) in msg and words in msg and "\n" not in msg


def test_original_layout_refuses_a_narrowed_resnet(tmp_path):
    from exif_jax.convert import export_original

    cfg = tiny_model_config("resnet50", **{"resnet.width": 16, "resnet.stages": (1, 1, 1, 1)})
    with pytest.raises(ConversionError, match="original .pth layout holds only ResNet-50"):
        export_original(build_model(cfg, nnx.Rngs(0)), cfg, tmp_path / "narrow.pth")
    assert not (tmp_path / "narrow.pth").exists()


def test_original_layout_refuses_an_input_filter(tmp_path):
    """A full ResNet-50 that sees the high-pass residual would load into the original EXIFNet, which feeds it RGB."""
    from exif_jax.convert import export_original

    cfg = tiny_model_config("resnet50", image_filter="highpass")  # the full ResNet-50 layout
    with pytest.raises(ConversionError, match="image_filter='highpass'"):
        export_original(build_model(cfg, nnx.Rngs(0)), cfg, tmp_path / "hp.pth")
    assert not (tmp_path / "hp.pth").exists()
