"""Training logs: `WORKDIR/metrics.jsonl`, TensorBoard events, optional Weights & Biases, and a progress line."""
from __future__ import annotations

import json
import math
import pathlib
import sys
import time


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class MetricsWriter:
    """One JSON object per log step in `metrics.jsonl`; the same scalars to TensorBoard (and wandb if enabled).

    Only the primary process writes. On resume, lines after the restored step are dropped (`truncate_after`), so a
    restarted run's file equals an uninterrupted run's.
    """

    def __init__(self, workdir, *, primary: bool = True, total_steps: int = 0, wandb_project: str = "",
                 config=None, stream=None):
        self.workdir = pathlib.Path(workdir)
        self.primary = primary
        self.total_steps = int(total_steps)
        self.stream = stream or sys.stdout
        self.path = self.workdir / "metrics.jsonl"
        self._tb = None
        self._wandb = None
        if not primary:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(str(self.workdir / "tensorboard"))
        if wandb_project:
            try:
                import wandb
            except ImportError:
                raise RuntimeError(f"wandb_project={wandb_project!r} but wandb is not installed "
                                   "(pip install 'exif-jax[wandb]', or set --config.wandb_project=)") from None
            self._wandb = wandb.init(project=wandb_project, dir=str(self.workdir), resume="allow",
                                     config=config.to_dict() if config is not None else None)

    def truncate_after(self, step: int) -> None:
        """Drops logged lines with `step > step` (kept: everything up to the restored checkpoint)."""
        if not self.primary or not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (ValueError, KeyError):
                continue
        self.path.write_text("".join(l + "\n" for l in keep))

    def logged(self, step: int) -> dict:
        """The last row logged at `step` ({} if none)."""
        if not self.path.is_file():
            return {}
        found = {}
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("step") == step:
                found = row
        return found

    def write(self, step: int, scalars: dict) -> None:
        if not self.primary:
            return
        row = {"step": int(step)}
        row.update({k: (float(v) if not isinstance(v, str) else v) for k, v in scalars.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        for k, v in row.items():
            if k != "step" and isinstance(v, float):
                self._tb.add_scalar(k, v, step)
        self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(row, step=step)

    def progress(self, step: int, scalars: dict, started: float, start_step: int) -> None:
        """`step 120/1000 (12.0%) loss 3.21 lr 1.0e-04 | 45.2 samples/s | eta 5m10s`."""
        if not self.primary:
            return
        elapsed = time.time() - started
        done = step - start_step
        rate = done / elapsed if elapsed > 0 and done > 0 else float("nan")
        eta = (self.total_steps - step) / rate if rate and rate > 0 else float("nan")
        parts = [f"step {step}/{self.total_steps} ({100.0 * step / max(self.total_steps, 1):.1f}%)"]
        for key, fmt in (("loss", "{:.4f}"), ("lr", "{:.2e}"), ("grad_norm", "{:.3g}"), ("eval_loss", "{:.4f}"),
                         ("eval_top5", "{:.3f}"), ("eval_photo_top5", "{:.3f}")):
            if key in scalars:
                parts.append(f"{key} " + fmt.format(scalars[key]))
                if f"{key}_margin" in scalars:
                    parts.append(f"({scalars[key + '_margin']:+.3f} vs untrained)")
        line = " ".join(parts)
        if "samples_per_sec" in scalars:
            line += f" | {scalars['samples_per_sec']:.1f} samples/s ({scalars.get('data_wait_frac', 0.0):.0%} data wait)"
        line += f" | {rate:.2f} steps/s | eta {_fmt_duration(eta)}" if rate == rate else " | eta ?"
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
