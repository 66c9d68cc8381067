"""Model throughput and parity: exif-jax ExifClip vs the PyTorch reference (`ExifNetTorch`) with the same weights.

    python bench/model_forward.py                        # full size: ResNet-50 + DistilBERT-base, batch 256
    python bench/model_forward.py --quick                # CPU smoke: batch 4, 2 timed steps

Measures samples/s (image crop + EXIF text per sample) for: eval forward (fp32, bf16 compute) and a contrastive
forward+backward (BatchNorm in train mode, CLIP loss, fixed scale 100), in JAX and in torch (fp32; bf16 autocast),
all in the same run, and reports JAX/torch ratios and the JAX bf16/fp32 speedup. Parity: max |JAX - torch| relative
to the embedding norm, fp32, at "highest" matmul precision. Writes JSON to bench/results/model_forward.json (--out).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def timeit(fn, steps, warmup=2):
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--crop", type=int, default=124)
    ap.add_argument("--text-len", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="batch 4, 2 steps (CPU smoke test)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "model_forward.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.steps = 4, 2

    import jax
    import jax.numpy as jnp
    import torch
    from flax import nnx

    from exif_jax.convert.mapping import load_torch_state
    from exif_jax.convert.torch_reference import ExifNetTorch
    from exif_jax.models import build_model, get_model_config, losses

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"jax {jax.__version__} devices={jax.devices()} torch {torch.__version__} on {dev}", flush=True)
    torch.manual_seed(0)
    net = ExifNetTorch().to(dev)
    state = {k[len("model."):]: v.detach().cpu().numpy() for k, v in net.state_dict().items()
             if k.startswith(("model.visual.", "model.transformer."))}

    def jax_model(dtype):
        cfg = get_model_config("resnet50", dtype=dtype)
        m = nnx.eval_shape(lambda: build_model(cfg, nnx.Rngs(0)))
        load_torch_state(m, state, "<torch reference>")
        return m

    rng = np.random.default_rng(0)
    b, c, L = args.batch, args.crop, args.text_len
    x = rng.normal(size=(b, c, c, 3)).astype(np.float32)
    ids = rng.integers(1000, 30000, (b, L)).astype(np.int32)
    lengths = rng.integers(L // 4, L + 1, b)
    mask = (np.arange(L)[None] < lengths[:, None]).astype(np.int32)
    xj, idj, mj = jnp.asarray(x), jnp.asarray(ids), jnp.asarray(mask)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(dev)
    idt, mt = torch.from_numpy(ids).long().to(dev), torch.from_numpy(mask).long().to(dev)
    results = {"batch": b, "crop": c, "text_len": L, "steps": args.steps, "jax_devices": str(jax.devices()),
               "torch_device": torch.cuda.get_device_name() if dev == "cuda" else platform.processor() or "cpu"}

    # ---- parity (fp32, highest precision)
    m32 = jax_model("float32")
    with jax.default_matmul_precision("highest"):
        fwd_hi = nnx.jit(lambda m, x, i, k: (m.encode_image(x), m.encode_text(i, k)))
        ji, jt = (np.asarray(a) for a in fwd_hi(m32, xj[:8], idj[:8], mj[:8]))
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    net.eval()
    with torch.no_grad():
        ti, tt = net.encode_image(xt[:8]).cpu().numpy(), net.encode_text(idt[:8], mt[:8]).cpu().numpy()
    rel = lambda a, r: float(np.max(np.abs(a - r) / np.linalg.norm(r, axis=-1, keepdims=True)))  # noqa: E731
    results["parity_fp32_rel_err"] = {"image": rel(ji, ti), "text": rel(jt, tt)}
    print("parity (fp32, highest):", results["parity_fp32_rel_err"], flush=True)
    torch.backends.cudnn.allow_tf32 = True  # torch defaults from here on

    # ---- JAX timings (default precision)
    def jax_fwd(m):
        f = nnx.jit(lambda m, x, i, k: (m.encode_image(x), m.encode_text(i, k)))
        return lambda: jax.block_until_ready(f(m, xj, idj, mj))

    def jax_train(m):
        @nnx.jit
        def step(m, x, i, k):
            def loss_fn(m):
                img, txt = m(x, i, k, train=True)
                return losses.clip_loss(img, txt, 100.0)
            return nnx.value_and_grad(loss_fn)(m)
        return lambda: jax.block_until_ready(step(m, xj, idj, mj))

    t = {}
    t["jax_fwd_fp32"] = timeit(jax_fwd(m32), args.steps)
    t["jax_fwd_bf16"] = timeit(jax_fwd(jax_model("bfloat16")), args.steps)
    t["jax_train_fp32"] = timeit(jax_train(jax_model("float32")), args.steps)
    t["jax_train_bf16"] = timeit(jax_train(jax_model("bfloat16")), args.steps)
    for k, v in t.items():
        print(f"{k}: {b / v:.1f} samples/s", flush=True)

    # ---- torch timings (eager, same weights)
    if not args.no_torch:
        sync = (lambda: torch.cuda.synchronize()) if dev == "cuda" else (lambda: None)  # noqa: E731

        def torch_fwd(bf16):
            def run():
                with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
                    net.encode_image(xt), net.encode_text(idt, mt)
                sync()
            return run

        def torch_train(bf16):
            def run():
                net.zero_grad(set_to_none=True)
                with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
                    img, txt = net(xt, idt, mt)
                    img = torch.nn.functional.normalize(img.float(), dim=-1)
                    txt = torch.nn.functional.normalize(txt.float(), dim=-1)
                    logits = 100.0 * img @ txt.T
                    lab = torch.arange(b, device=dev)
                    loss = (torch.nn.functional.cross_entropy(logits, lab)
                            + torch.nn.functional.cross_entropy(logits.T, lab)) / 2
                loss.backward()
                sync()
            return run

        net.eval()
        t["torch_fwd_fp32"] = timeit(torch_fwd(False), args.steps)
        t["torch_fwd_bf16"] = timeit(torch_fwd(True), args.steps)
        net.train()
        t["torch_train_fp32"] = timeit(torch_train(False), args.steps)
        t["torch_train_bf16"] = timeit(torch_train(True), args.steps)
        for k in ("torch_fwd_fp32", "torch_fwd_bf16", "torch_train_fp32", "torch_train_bf16"):
            print(f"{k}: {b / t[k]:.1f} samples/s", flush=True)

    results["samples_per_s"] = {k: b / v for k, v in t.items()}
    ratios = {"jax_bf16_over_fp32_fwd": t["jax_fwd_fp32"] / t["jax_fwd_bf16"],
              "jax_bf16_over_fp32_train": t["jax_train_fp32"] / t["jax_train_bf16"]}
    if not args.no_torch:
        for mode in ("fwd_fp32", "fwd_bf16", "train_fp32", "train_bf16"):
            ratios[f"jax_over_torch_{mode}"] = t[f"torch_{mode}"] / t[f"jax_{mode}"]
    results["speed_ratios"] = ratios
    print(json.dumps(ratios, indent=1))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
