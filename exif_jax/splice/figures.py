"""Pictures of a splice map that read alone: fixed polarity, absolute colour scale, colour bars, panels.

Polarity. The mean-shift map is the consistency of every cell with the densest cluster (the mode), so either the
host or the pasted region can come out high, depending on which is denser. Shown maps are therefore
`|map - median(map)|`: the median cell belongs to the MAJORITY of the image, so the majority is cold and whatever
differs from it -- the minority, normally the spliced region -- is hot, whichever cluster the mode fell in.
Scale. Values are in the map's own units (mean `1 - cos` between patch embeddings), from 0 to
`max(HEAT_FLOOR, max of the map)`: an authentic photo whose map varies by 0.01 stays cold instead of being
stretched to saturated red as a per-image min-max would. The ncuts map gets the same rule (minority label = 1).
Metrics never use these pictures: they score the raw map and its inversion (`eval.metrics`).
"""
from __future__ import annotations

import numpy as np

HEAT_FLOOR = 0.1  # colour-scale maximum at least this (1 - cos units): small variations stay cold
CMAP = "jet"
DISPLAY_SIDE = 2048  # overlays are written at most this long per side
THUMB_SIDE = 320  # report thumbnails


def display_cells(cells: np.ndarray) -> np.ndarray:
    """Cell map -> `|cells - median|` (majority cold, minority hot; see the module docstring)."""
    c = np.asarray(cells, np.float32)
    return np.abs(c - np.float32(np.median(c)))


def colour_max(display: np.ndarray) -> float:
    return float(max(HEAT_FLOOR, float(np.max(display)) if display.size else 0.0))


def _fit_side(h: int, w: int, side: int) -> tuple[int, int]:
    s = min(1.0, side / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def resize(img: np.ndarray, h: int, w: int, nearest: bool = False) -> np.ndarray:
    import cv2

    if img.shape[:2] == (h, w):
        return img
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if h < img.shape[0] else cv2.INTER_LINEAR)
    return cv2.resize(img, (w, h), interpolation=interp)


def colorize(display: np.ndarray, vmax: float) -> np.ndarray:
    """Display map -> `uint8 [H, W, 3]` RGB with matplotlib's jet on [0, vmax] (the colour bar's scale)."""
    from matplotlib import colormaps

    u8 = np.clip(np.asarray(display, np.float32) * np.float32(255.0 / vmax) + 0.5, 0, 255).astype(np.uint8)
    lut = (colormaps[CMAP](np.arange(256))[:, :3] * 255 + 0.5).astype(np.uint8)
    return lut[u8]


def overlay(image: np.ndarray, cells: np.ndarray, alpha: float = 0.5, side: int = DISPLAY_SIDE) -> np.ndarray:
    """Heatmap (display rule above) blended over the photo, at most `side` px per side; uint8 throughout."""
    import cv2

    h, w = _fit_side(*image.shape[:2], side)
    disp = display_cells(cells)
    heat = colorize(resize(disp, h, w), colour_max(disp))
    return cv2.addWeighted(heat, alpha, resize(image, h, w), 1 - alpha, 0.0)


def thumbnail(image: np.ndarray, side: int = THUMB_SIDE, nearest: bool = False) -> np.ndarray:
    return resize(image, *_fit_side(*image.shape[:2], side), nearest=nearest)


def mask_rgb(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask).astype(bool)
    return np.repeat((m * 255).astype(np.uint8)[:, :, None], 3, axis=2)


def _heat_axes(ax, fig, disp_img, vmax, title):
    im = ax.imshow(disp_img, cmap=CMAP, vmin=0.0, vmax=vmax, interpolation="bilinear")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    cb.set_label("distance from the majority (1 - cos)", fontsize=7)
    cb.ax.tick_params(labelsize=7)


def heat_figure(path, image_shape, cells, side: int = THUMB_SIDE) -> None:
    """Heatmap alone with its colour bar (the report's heatmap column)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = _fit_side(*image_shape[:2], side)
    disp = display_cells(cells)
    fig, ax = plt.subplots(figsize=(3.6, 3.6 * h / w + 0.2), dpi=100)
    _heat_axes(ax, fig, resize(disp, h, w), colour_max(disp), "")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def panel(path, image, cells, *, mask=None, ncuts_cells=None, title: str = "", side: int = 512) -> None:
    """`image | heatmap + colour bar | ncuts (if any) | ground truth (if known)` as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = _fit_side(*image.shape[:2], side)
    cols = 2 + (ncuts_cells is not None) + (mask is not None)
    fig, axes = plt.subplots(1, cols, figsize=(3.4 * cols * max(0.6, w / max(h, 1)) + 0.6, 3.6), dpi=100,
                             squeeze=False)
    axes = axes[0]
    axes[0].imshow(resize(image, h, w))
    axes[0].set_title("image", fontsize=9)
    axes[0].axis("off")
    disp = display_cells(cells)
    _heat_axes(axes[1], fig, resize(disp, h, w), colour_max(disp), "mean-shift map (minority hot)")
    k = 2
    if ncuts_cells is not None:
        axes[k].imshow(resize(display_cells(ncuts_cells), h, w, nearest=True), cmap="gray", vmin=0, vmax=1)
        axes[k].set_title("ncuts (minority white)", fontsize=9)
        axes[k].axis("off")
        k += 1
    if mask is not None:
        axes[k].imshow(resize(np.asarray(mask).astype(np.uint8), h, w, nearest=True), cmap="gray", vmin=0, vmax=1)
        axes[k].set_title("ground truth (white = spliced)", fontsize=9)
        axes[k].axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def score_plots(path, series: dict[str, np.ndarray], labels: np.ndarray | None = None) -> None:
    """Detection ROC and PR curves (when labels has both classes) and score histograms, one PNG.

    `series`: method name -> image scores (higher = more likely spliced), aligned with `labels`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = labels is not None and len(set(np.asarray(labels).tolist())) == 2
    hist = {k: v for k, v in series.items() if not k.startswith("random")}  # a random score's histogram says nothing
    ncols = (2 if both else 0) + len(hist)
    fig, axes = plt.subplots(1, ncols, figsize=(3.6 * ncols, 3.3), dpi=100, squeeze=False)
    axes = axes[0]
    k = 0
    if both:
        # Imported only here: sklearn.metrics pulls in ~1,200 modules (scipy.stats, pandas), seconds on a cold disk,
        # and `exif-jax splice` (no labels) draws this plot on its way out after Ctrl-C.
        from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

        y = np.asarray(labels).astype(int)
        for name, s in series.items():
            fpr, tpr, _ = roc_curve(y, s)
            axes[0].plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, s):.3f})")
            prec, rec, _ = precision_recall_curve(y, s)
            axes[1].step(rec, prec, where="post", label=f"{name} (AP {average_precision_score(y, s):.3f})")
        axes[0].plot([0, 1], [0, 1], "k:", lw=0.8)
        axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title="detection ROC")
        axes[1].axhline(y.mean(), color="k", ls=":", lw=0.8)
        axes[1].set(xlabel="recall", ylabel="precision", title="detection precision-recall")
        for ax in axes[:2]:
            ax.legend(fontsize=7, loc="lower right")
        k = 2
    for name, s in hist.items():
        ax = axes[k]
        s = np.asarray(s, np.float64)
        bins = np.histogram_bin_edges(s, bins=min(30, max(5, len(s) // 2)))
        if both:
            for lab, colour, text in ((0, "tab:blue", "authentic"), (1, "tab:red", "manipulated")):
                ax.hist(s[np.asarray(labels) == lab], bins=bins, alpha=0.6, color=colour, label=text)
            ax.legend(fontsize=7)
        else:
            ax.hist(s, bins=bins, color="tab:gray")
        ax.set(xlabel="image score (mean 1 - cos)", ylabel="images", title=f"scores: {name}")
        k += 1
    for ax in axes:
        ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
