"""Per-image splice pipeline speed: exif-jax vs a PyTorch transcription of the original evaluator, same run.

    python bench/splice_pipeline.py [--image PHOTO] [--repeats 3] [--out bench/results/splice_pipeline.json]

Both sides use the same network: a torchvision ResNet-50 with `fc: 2048 -> 768` and seeded random weights, saved
as an original-layout `.pth` and loaded into exif-jax with `exif_jax.load` (the converter). Image: 757x568
(Columbia size) -- a crop of `--image`, else of a shared camera photo, else a procedural texture with a pasted
region. The baseline is the original `EXIF_SC.predict` path minus its PCA visualisation: per-patch PIL
preprocessing (with its float->uint8 inversion), batches of 32 on the torch device, the O(N^2) Python voting loop,
the cKDTree mean shift, cv2 resize. Ours runs with `legacy_invert` so both networks see identical inputs.
Reports medians over `--repeats` runs after one warm-up (compile) run, ratios baseline/ours, and writes JSON.
Ours uses the default mean shift (initial-row neighbours, float64) = the released code's effective behaviour.

Levers (`--levers`, same run): bf16 compute with fp32 accumulation (embedding difference reported), encoder batch
size, the mean shift in float32. The limit: ResNet-50 at 124 px costs `FLOPS_PER_PATCH` per patch (2 x the
multiply-adds); the features' floor is patches x that / the measured dense-matmul peak (fp32 and bf16, measured
here). Thread count is XLA's own (all cores); measure on a quiet machine and say so.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import sys
import tempfile
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

H, W = 568, 757
FLOPS_PER_PATCH = 2 * 1.2606e9  # ResNet-50 at 124x124 (fc 2048->768 included): 1.26 G multiply-adds


# ------------------------------------------------------------------------------------- the original, transcribed
class OriginalEvaluator:
    """`eval/image_splice/exif_sc.py` + `utils/structures.py` of the original repository, on one image."""

    def __init__(self, net, device, patch_size=124, num_per_dim=30, window=10, iters=5):
        self.net, self.device = net, device
        self.patch_size, self.num_per_dim, self.window, self.iters = patch_size, num_per_dim, window, iters

    def preprocess(self, patch):
        import torchvision.transforms as T

        image = T.ToPILImage()(patch)  # float patch in 0..255: ToPILImage multiplies by 255 -> inverted bytes
        return T.Compose([T.ToTensor(), T.Normalize((0.48145466, 0.4578275, 0.40821073),
                                                     (0.26862954, 0.26130258, 0.27577711))])(image.convert("RGB"))

    def features(self, data, stride, max_h, max_w, batch_size=32):
        import torch

        idxs = torch.stack(torch.meshgrid([torch.arange(max_h), torch.arange(max_w)], indexing="ij")).view(2, -1).T
        feats = []
        with torch.no_grad():
            for s in range(0, len(idxs), batch_size):
                patches = []
                for h_idx, w_idx in idxs[s:s + batch_size]:
                    y, x = int(h_idx) * stride, int(w_idx) * stride
                    patches.append(data[:, y:y + self.patch_size, x:x + self.patch_size])
                batch = torch.stack([self.preprocess(p) for p in patches]).to(self.device)
                feats.append(self.net(batch))
        out = torch.cat(feats)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return out

    def voting(self, feats, stride, max_h, max_w, batch_size=1024):
        import torch

        spread = max(1, self.patch_size // stride)
        shape = (max_h + spread - 1, max_w + spread - 1) * 2
        responses = torch.zeros(shape)
        vote_counts = torch.zeros(shape) + 1e-4
        idxs = np.mgrid[0:max_h, 0:max_w, 0:max_h, 0:max_w].reshape((4, -1)).T
        for start in range(0, len(idxs), batch_size):
            b = idxs[start:start + batch_size]
            a_idx = torch.from_numpy(np.ravel_multi_index(b[:, :2].T, [max_h, max_w]))
            b_idx = torch.from_numpy(np.ravel_multi_index(b[:, 2:].T, [max_h, max_w]))
            x1, x2 = feats[a_idx], feats[b_idx]
            x1 = x1 / x1.norm(dim=-1, keepdim=True)
            x2 = x2 / x2.norm(dim=-1, keepdim=True)
            sim = (1 - (x1 @ x2.t()).diagonal()).cpu()
            for i in range(len(sim)):
                responses[b[i][0]:b[i][0] + spread, b[i][1]:b[i][1] + spread,
                          b[i][2]:b[i][2] + spread, b[i][3]:b[i][3] + spread] += sim[i]
                vote_counts[b[i][0]:b[i][0] + spread, b[i][1]:b[i][1] + spread,
                            b[i][2]:b[i][2] + spread, b[i][3]:b[i][3] + spread] += 1
        return (responses / vote_counts).numpy()

    def mean_shift(self, points_, heat_map):
        import scipy.spatial

        points = np.copy(points_)
        kdt = scipy.spatial.cKDTree(points)
        eps_5 = np.percentile(scipy.spatial.distance.cdist(points, points, metric="euclidean"), self.window)
        for _ in range(self.iters):
            for point_ind in range(points.shape[0]):
                point = points[point_ind]
                nearest_inds = kdt.query_ball_point(point, r=eps_5)
                points[point_ind] = np.mean(points[nearest_inds], axis=0)
        val = [kdt.count_neighbors(scipy.spatial.cKDTree(np.array([points[i]])), r=eps_5)
               for i in range(points.shape[0])]
        ind = np.nonzero(val == np.max(val))
        return np.mean(points[ind[0]], axis=0).reshape(heat_map.shape[0], heat_map.shape[1])

    def predict(self, img_hwc):
        import cv2
        import torch

        data = torch.from_numpy(np.array(img_hwc)).permute(2, 0, 1).float()
        height, width = img_hwc.shape[:2]
        stride = (max(height, width) - self.patch_size) // self.num_per_dim
        max_h = 1 + math.floor((height - self.patch_size) / stride)
        max_w = 1 + math.floor((width - self.patch_size) / stride)
        t0 = time.perf_counter()
        feats = self.features(data, stride, max_h, max_w)
        t1 = time.perf_counter()
        maps = self.voting(feats, stride, max_h, max_w)
        t2 = time.perf_counter()
        ms = self.mean_shift(maps.reshape((-1, maps.shape[0] * maps.shape[1])), maps)
        out_ms = cv2.resize(ms, (width, height), interpolation=cv2.INTER_LINEAR)
        score = float(maps.mean())
        t3 = time.perf_counter()
        return {"ms": out_ms, "score": score, "feats": feats.cpu().numpy(),
                "seconds": {"features": t1 - t0, "voting": t2 - t1, "mean_shift": t3 - t2, "total": t3 - t0}}


# ------------------------------------------------------------------------------------- limit and levers
def exif_jax_load_bf16(pth):
    import exif_jax

    return exif_jax.load(str(pth), dtype="bfloat16")


def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
    """Dense matmul GFLOP/s on this machine (fp32, and bf16 inputs with fp32 accumulation)."""
    import jax
    import jax.numpy as jnp

    out = {}
    for name, dt in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
        a = jnp.ones((n, n), dt)
        f = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
        f(a, a).block_until_ready()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            f(a, a).block_until_ready()
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * n ** 3 / best / 1e9
    return out


def levers(image, grid, model, model_bf16, feats_fp32, flops) -> dict:
    from exif_jax.splice.embed import model_embed_fn
    from exif_jax.splice.grid import extract_patches
    from exif_jax.splice.pipeline import localize_embeddings

    patches = extract_patches(image, grid)
    out = {}

    def timed(fn, n=2):
        fn()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = fn()
            ts.append(time.perf_counter() - t0)
        return r, float(np.median(ts))

    for bs in (32, 128):
        _, t = timed(lambda: model_embed_fn(model, batch_size=bs, invert=True)(patches))
        out[f"features_batch{bs}_s"] = t
        print(f"lever batch {bs}: features {t:.3f}s", flush=True)
    if model_bf16 is not None:
        fb, t = timed(lambda: model_embed_fn(model_bf16, batch_size=64, invert=True)(patches))
        rel = float(np.abs(fb - feats_fp32).max() / np.abs(feats_fp32).max())
        cos = np.sum(fb * feats_fp32, 1) / np.linalg.norm(fb, axis=1) / np.linalg.norm(feats_fp32, axis=1)
        r32 = localize_embeddings(feats_fp32, grid)
        r16 = localize_embeddings(fb, grid)
        out["bf16"] = {"features_s": t, "gflops": flops / t / 1e9, "embedding_max_rel_diff": rel,
                       "embedding_min_cosine": float(cos.min()), "score_diff": abs(r16.score - r32.score),
                       "heatmap_max_abs_diff": float(np.abs(r16.heatmap - r32.heatmap).max())}
        print(f"lever bf16: features {t:.3f}s, {out['bf16']}", flush=True)
    r64, t64 = timed(lambda: localize_embeddings(feats_fp32, grid))
    r32, t32 = timed(lambda: localize_embeddings(feats_fp32, grid, ms_dtype="float32"))
    out["mean_shift_float32"] = {"post_embedding_s": t32, "post_embedding_float64_s": t64,
                                 "heatmap_max_abs_diff": float(np.abs(r32.heatmap - r64.heatmap).max())}
    print(f"lever mean shift float32: {out['mean_shift_float32']}", flush=True)
    return out


# ------------------------------------------------------------------------------------- inputs
def bench_image(path=None) -> tuple[np.ndarray, str]:
    from exif_jax.splice.io import load_image

    candidates = [pathlib.Path(path)] if path else [
        REPO / ".bench_img" / "columbia_size.png",
        REPO.parent / "shared" / "data" / "photos_dev" / "digicam_cc0" / "Canon__EOS5D-MIII___K6A7944.JPG"]
    for c in candidates:
        if c.is_file():
            img = load_image(c)
            if img.shape[0] >= H and img.shape[1] >= W:
                y, x = (img.shape[0] - H) // 2, (img.shape[1] - W) // 2
                return np.ascontiguousarray(img[y:y + H, x:x + W]), str(c)
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 30, (H, W, 3)), 0, 255)
    img[150:400, 350:650] = np.clip(rng.normal(90, 50, (250, 300, 3)), 0, 255)
    return img.astype(np.uint8), "procedural"


def build_models(tmp: pathlib.Path, seed: int = 0):
    import torch

    import exif_jax
    from exif_jax.convert.torch_reference import ExifNetTorch, distilbert_config

    torch.manual_seed(seed)
    # a small text tower (unused here; its width must equal the 768-d embedding)
    net = ExifNetTorch(text_config=distilbert_config(dim=768, n_layers=1, n_heads=12, hidden_dim=256,
                                                     vocab_size=512, max_position=64))
    net.eval()
    pth = tmp / "random_rn50.pth"
    torch.save({"model": net.state_dict()}, pth)
    return net, exif_jax.load(str(pth))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--baseline-repeats", type=int, default=1)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "splice_pipeline.json"))
    p.add_argument("--size", default="", help="WxH of the crop (default 757x568, Columbia's); a small one such as "
                   "300x130 makes a quick check (bench/device_check.sh --dry-run)")
    p.add_argument("--levers", action="store_true", help="also time bf16, batch sizes and a float32 mean shift")
    args = p.parse_args(argv)
    global W, H
    if args.size:
        W, H = (int(v) for v in args.size.lower().split("x"))

    import jax
    import torch

    from exif_jax.splice.embed import model_embed_fn
    from exif_jax.splice.grid import extract_patches, patch_grid
    from exif_jax.splice.pipeline import localize_embeddings

    image, source = bench_image(args.image)
    grid = patch_grid(*image.shape[:2])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"image {W}x{H} from {source}: {grid.num_patches} patches, {grid.hc}x{grid.wc} cells; "
          f"jax {jax.devices()[0].platform}, torch {device}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        net, model = build_models(pathlib.Path(tmp))
        model_bf16 = exif_jax_load_bf16(pathlib.Path(tmp) / "random_rn50.pth") if args.levers else None
    tnet = net.model.visual.to(device)
    embed = model_embed_fn(model, batch_size=64, invert=True)

    def ours():
        t0 = time.perf_counter()
        feats = embed(extract_patches(image, grid))
        t1 = time.perf_counter()
        res = localize_embeddings(feats, grid)
        t2 = time.perf_counter()
        return res, feats, {"features": t1 - t0, "post_embedding": t2 - t1, "total": t2 - t0,
                            "voting": res.timings["voting_s"], "mean_shift": res.timings["mean_shift_s"]}

    t0 = time.perf_counter()
    ours()
    warmup = time.perf_counter() - t0
    print(f"ours warm-up (compilation included): {warmup:.2f}s", flush=True)
    runs = []
    for r in range(args.repeats):
        res, feats, sec = ours()
        runs.append(sec)
        print(f"ours run {r + 1}: " + ", ".join(f"{k} {v:.3f}s" for k, v in sec.items()), flush=True)
    ours_sec = {k: float(np.median([s[k] for s in runs])) for k in runs[0]}

    orig = OriginalEvaluator(tnet, device)
    base_runs = []
    for r in range(args.baseline_repeats):
        base = orig.predict(image)
        base_runs.append(base["seconds"])
        print(f"original run {r + 1}: " + ", ".join(f"{k} {v:.3f}s" for k, v in base["seconds"].items()), flush=True)
    base_sec = {k: float(np.median([s[k] for s in base_runs])) for k in base_runs[0]}
    base_post = base_sec["voting"] + base_sec["mean_shift"]

    feat_rel = float(np.abs(feats - base["feats"]).max() / np.abs(base["feats"]).max())
    corr = float(np.corrcoef(res.heatmap.ravel(), base["ms"].ravel())[0, 1])
    ratios = {"post_embedding": base_post / ours_sec["post_embedding"],
              "whole_image": base_sec["total"] / ours_sec["total"],
              "features": base_sec["features"] / ours_sec["features"],
              "voting": base_sec["voting"] / ours_sec["voting"],
              "mean_shift": base_sec["mean_shift"] / ours_sec["mean_shift"]}
    result = {
        "bench": "splice_pipeline", "image": {"width": W, "height": H, "source": source},
        "grid": {"patches": grid.num_patches, "cells": [grid.hc, grid.wc], "stride": grid.stride},
        "machine": {"jax_device": str(jax.devices()[0]), "torch_device": str(device),
                    "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
                    "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()},
        "network": "torchvision resnet50, fc 2048->768, seeded random weights (same weights on both sides)",
        "ours_seconds": ours_sec, "ours_warmup_seconds": warmup, "original_seconds": base_sec,
        "original_post_embedding_seconds": base_post, "speedup": ratios,
        "targets": {"post_embedding>=50x": ratios["post_embedding"] >= 50, "whole_image>=10x": ratios["whole_image"] >= 10},
        "agreement": {"embedding_max_rel_diff": feat_rel, "score_ours": res.score, "score_original": base["score"],
                      "heatmap_correlation": corr,
                      "heatmap_max_abs_diff": float(np.abs(res.heatmap - base["ms"]).max()),
                      "note": "ours: initial-row neighbours (the released code's float32 maps make its cKDTree "
                              "copy the rows), float64"},
    }
    peak = matmul_peak()
    flops = grid.num_patches * FLOPS_PER_PATCH
    result["limit"] = {"features_gflop": flops / 1e9, "matmul_peak_gflops": peak,
                       "features_floor_s": {k: flops / (v * 1e9) for k, v in peak.items()},
                       "features_achieved_gflops": flops / ours_sec["features"] / 1e9,
                       "whole_image_ratio_if_features_at_fp32_peak":
                           base_sec["total"] / (flops / (peak["float32"] * 1e9) + ours_sec["post_embedding"])}
    if args.levers:
        result["levers"] = levers(image, grid, model, model_bf16, feats, flops)
    print(json.dumps({"limit": result["limit"], "levers": result.get("levers")}, indent=2))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"speedup": ratios, "targets": result["targets"], "agreement": result["agreement"]}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
