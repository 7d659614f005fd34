"""Figures and tables of docs/study.md, from the sweeps' results and snapshots.

Usage::

    for f in docs/study/*.toml; do
        s=$(basename $f .toml); xyprop sweep $f --out runs/$s --workers 2
    done
    python docs/study/figures.py runs            # PNGs + tables into docs/study/

Needs the sweep output folders (results.csv and each run's snapshot.npz) under the given
folder; copies each results.csv beside its sweep file as ``<sweep>.results.csv``. Study 4
(response maps over training) is a single run made here. Figures are Bokeh figures turned
into PNG by a headless chromium (Playwright, as the browser tests use), so the study needs
nothing beyond xyprop's test dependencies.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import shutil
import statistics as st
from collections import defaultdict
from pathlib import Path

import colorcet as cc
import numpy as np
from bokeh.embed import file_html
from bokeh.layouts import gridplot, row
from bokeh.models import ColorBar, LinearColorMapper, LogColorMapper
from bokeh.palettes import Category10
from bokeh.plotting import figure
from bokeh.resources import INLINE
from PIL import Image, ImageChops

from xyprop.engine import Config, Trainer, load_snapshot

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"


# == helpers ================================================================================
def read(runs: Path, name: str) -> list[dict]:
    """Rows of ``runs/name/results.csv`` (copied beside the sweep file)."""
    src = runs / name / "results.csv"
    shutil.copyfile(src, HERE / f"{name}.results.csv")
    with src.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["status"] == "ok"]


def family(label: str) -> str:
    """'lattice 6x6 8-nb recipe' -> 'lattice 8-nb recipe'; 'all-to-all 5 hidden' -> ..."""
    label = re.sub(r" \d+x\d+", "", label)
    label = re.sub(r" \d+ hidden", "", label)
    return re.sub(r" \[.*\]", "", label)


def groups(rows: list[dict], key="label") -> dict[str, list[dict]]:
    g = defaultdict(list)
    for r in rows:
        g[r[key]].append(r)
    return g


def save_png(layout, path: Path) -> None:
    """Render a Bokeh layout in headless chromium and screenshot it."""
    from playwright.sync_api import sync_playwright

    html = file_html(layout, INLINE, path.stem)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = b.new_page(viewport={"width": 1600, "height": 1200}, device_scale_factor=1)
        page.set_content(html)
        page.wait_for_selector(".bk-Figure, .bk-GridPlot, .bk-Row, .bk-Column")
        page.wait_for_timeout(800)
        png = page.screenshot(full_page=True)
        b.close()
    # the root element is display: contents (no box of its own): crop the page to the ink
    img = Image.open(io.BytesIO(png)).convert("RGB")
    box = ImageChops.difference(img, Image.new("RGB", img.size, "white")).getbbox()
    if box:
        img = img.crop((max(box[0] - 8, 0), max(box[1] - 8, 0), box[2] + 8, box[3] + 8))
    img.save(path, optimize=True)
    print(f"wrote {path.relative_to(HERE.parent.parent)}")


def fig(title, w=430, h=300, **kw):
    f = figure(title=title, width=w, height=h, toolbar_location=None, **kw)
    f.title.text_font_size = "11pt"
    return f


COLORS = dict(zip(["lattice 4-nb", "lattice 8-nb", "lattice 8-nb recipe", "all-to-all",
                   "layered"], Category10[5], strict=True))


def quartiles(v):
    q = np.percentile(v, [25, 50, 75])
    return float(q[0]), float(q[1]), float(q[2])


# == study 1: XOR vs architecture ===========================================================
def study_xor(rows: list[dict]) -> str:
    by = groups(rows)
    fams = defaultdict(list)
    lines = ["| network | couplings | solved | epochs to solve (median, IQR) |",
             "|---|---|---|---|"]
    for label, rs in by.items():
        n = int(rs[0]["n_couplings"])
        ok = [int(r["epochs_to_target"]) for r in rs if r["epochs_to_target"]]
        rate = len(ok) / len(rs)
        q = quartiles(ok) if ok else (np.nan,) * 3
        fams[family(label)].append((n, rate, q, label))
        iqr = f"{q[1]:.0f} ({q[0]:.0f}-{q[2]:.0f})" if ok else "-"
        lines.append(f"| {label} | {n} | {len(ok)}/{len(rs)} | {iqr} |")
    a = fig("XOR: solved within 3,000 epochs (10 seeds)", x_axis_type="log",
            x_axis_label="couplings", y_axis_label="fraction of seeds solved")
    b = fig("XOR: epochs to solve (median, quartiles)", x_axis_type="log", y_axis_type="log",
            x_axis_label="couplings", y_axis_label="epochs")
    for fam, pts in fams.items():
        pts.sort()
        c = COLORS.get(fam, "black")
        x = [p[0] for p in pts]
        a.line(x, [p[1] for p in pts], color=c, legend_label=fam, line_width=2)
        a.scatter(x, [p[1] for p in pts], color=c, size=7)
        solved = [p for p in pts if np.isfinite(p[2][1])]
        xs = [p[0] for p in solved]
        b.line(xs, [p[2][1] for p in solved], color=c, line_width=2)
        b.scatter(xs, [p[2][1] for p in solved], color=c, size=7)
        b.segment(xs, [p[2][0] for p in solved], xs, [p[2][2] for p in solved], color=c)
    a.legend.location = "bottom_left"
    a.legend.label_text_font_size = "9pt"
    save_png(row(a, b), HERE / "s1_xor_architectures.png")
    return "\n".join(lines)


# == study 2: Iris vs size ==================================================================
def study_iris(rows: list[dict]) -> str:
    by = groups(rows)
    fams = defaultdict(list)
    lines = ["| network | couplings | test accuracy mean +- sd (5 seeds) | min - max | "
             "train accuracy | s per run |", "|---|---|---|---|---|---|"]
    for label, rs in by.items():
        n = int(rs[0]["n_couplings"])
        acc = [100 * float(r["test_accuracy"]) for r in rs]
        tr = [100 * float(r["train_accuracy"]) for r in rs]
        sec = st.median(float(r["seconds"]) for r in rs)
        m, s = st.mean(acc), st.stdev(acc)
        fams[family(label)].append((n, m, s))
        lines.append(f"| {label} | {n} | {m:.1f} +- {s:.1f} % | {min(acc):.1f} - "
                     f"{max(acc):.1f} | {st.mean(tr):.1f} % | {sec:.0f} |")
    f = fig("Iris: test accuracy vs size (5 seeds, mean +- sd)", w=600, h=340,
            x_axis_type="log", x_axis_label="couplings", y_axis_label="test accuracy (%)")
    for fam, pts in fams.items():
        pts.sort()
        c = COLORS.get(fam, "black")
        x, m, s = (np.array(v) for v in zip(*pts, strict=True))
        f.line(x, m, color=c, legend_label=fam, line_width=2)
        f.scatter(x, m, color=c, size=7)
        f.segment(x, m - s, x, m + s, color=c)
    f.legend.location = "bottom_left"
    save_png(f, HERE / "s2_iris_size.png")
    return "\n".join(lines)


# == responses ==============================================================================
def response_of(tr: Trainer, m_init: int = 8) -> np.ndarray:
    """Mean |phi_beta - phi_0| / beta per site over all training samples and m_init random
    starts, at the trainer's current parameters, (N,)."""
    t = tr.task
    r = tr.system.ep_gradient(t.x_train, t.targets(t.y_train), tr.w, tr.h, tr.psi,
                              beta=tr.config.beta, rng=np.random.default_rng(0), m_init=m_init)
    return r.response


def row_profile(resp: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Mean response per lattice row, (rows,); row 0 holds the clamped inputs."""
    return resp.reshape(rows, cols).mean(1)


def reach(profile: np.ndarray) -> float:
    """Response one row below the inputs relative to the output row: how much of the
    nudge survives the trip through the lattice (1 = no decay)."""
    return float(profile[1] / profile[-1])


# == study 3: skip length ===================================================================
def study_skips(rows: list[dict], runs: Path) -> str:
    by = groups(rows)
    out = []
    lines = ["| skips | solved | epochs to solve (median) | reach at init | reach trained "
             "(median) |", "|---|---|---|---|---|"]
    for label, rs in by.items():
        L = int(rs[0]["skip_length"])
        ok = [int(r["epochs_to_target"]) for r in rs if r["epochs_to_target"]]
        init_p, fin_p = [], []
        for r in rs:
            snap = load_snapshot(runs / r["snapshot"])
            cfg: Config = snap.config
            t0 = Trainer(cfg)
            init_p.append(row_profile(response_of(t0), cfg.rows, cfg.cols))
            tr = Trainer.from_snapshot(snap)
            fin_p.append(row_profile(response_of(tr), cfg.rows, cfg.cols))
        ip, fp = np.median(init_p, 0), np.median(fin_p, 0)
        ri = st.median(reach(p) for p in init_p)
        rf = st.median(reach(p) for p in fin_p)
        out.append((L, label, len(ok) / len(rs), st.median(ok) if ok else np.nan, ip, fp))
        med = f"{st.median(ok):.0f}" if ok else "-"
        lines.append(f"| {label} | {len(ok)}/{len(rs)} | {med} | {ri:.3f} | {rf:.3f} |")
    out.sort()
    pal = cc.b_linear_kry_5_95_c72[::-1]
    cols = [pal[int(i * (len(pal) - 1) / max(len(out) - 1, 1))] for i in range(len(out))]
    a = fig("XOR 8x8: solved of 10 seeds", w=330, x_axis_label="skip length "
            "(0 = none)", y_axis_label="fraction solved")
    a.vbar([o[0] for o in out], top=[o[2] for o in out], width=0.6, color=cols)
    panels = [a]
    for k, title in ((4, "response per row at init"), (5, "response per row, trained")):
        f = fig(f"{title} (median of seeds)", w=400, y_axis_type="log",
                x_axis_label="row (0 = inputs, 7 = output)", y_axis_label="mean |dphi|/beta")
        for o, c in zip(out, cols, strict=True):
            prof = o[k][1:]
            f.line(np.arange(1, len(prof) + 1), prof, color=c, line_width=2, legend_label=o[1])
        f.legend.location = "top_left"
        f.legend.label_text_font_size = "8pt"
        panels.append(f)
    save_png(row(*panels), HERE / "s3_skip_length.png")
    return "\n".join(lines)


# == study 4: response and coupling maps over training ======================================
MAP_CFG = dict(task="xor", arch="lattice", rows=6, cols=6, neighbourhood=8, m_init=4,
               init_mean=2.0, epochs=3000, stop_at_accuracy=1.0)
MAP_EPOCHS = (0, 10, 50, 150, 400)


def track(seed: int, epochs=MAP_EPOCHS) -> tuple[Trainer, dict]:
    """Train one XOR lattice (MAP_CFG); keep (response (N,), couplings per edge (E,)) at
    ``epochs`` and at the end, keyed by a label."""
    tr = Trainer(Config(**MAP_CFG, seed=seed))
    keep = {}

    def grab(tag):
        keep[tag] = (response_of(tr), tr.net.expand(tr.w).copy())

    grab(0)
    while not tr.done:
        e = tr.epoch
        tr.step()
        if tr.epoch != e and tr.epoch in epochs:
            grab(tr.epoch)
    solved = tr.history[-1]["train_accuracy"] >= 1
    grab(f"{tr.epoch} (solved)" if solved else f"{tr.epoch} (not solved)")
    return tr, keep


def marginal(resp: np.ndarray, hidden: np.ndarray, frac=0.05) -> np.ndarray:
    """Hidden sites whose response is below ``frac`` of the largest hidden response."""
    rh = resp[hidden]
    return hidden[rh < frac * rh.max()]


def study_maps(seed: int, seeds=range(6)) -> str:
    """Response and coupling maps over training of a 6x6 XOR lattice (drawn for ``seed``),
    and the marginal fraction over training for ``seeds``."""
    tr, keep = track(seed)
    rows, cols = tr.config.rows, tr.config.cols
    w0 = keep[0][1]
    net = tr.net
    xy = net.coords
    hidden = np.setdiff1d(np.arange(net.n_nodes), np.r_[net.input_nodes, net.output_nodes])
    lines = ["| epoch | marginal hidden sites (response < 5 % of the largest hidden one) | "
             "bonds between affected sites: share of bonds, share of the change abs(w - w0) |",
             "|---|---|---|"]
    # log scale: the nudged output site responds orders of magnitude more than the far sites
    rmax = max(float(r.max()) for r, _ in keep.values())
    wlim = max(float(np.abs(w).max()) for _, w in keep.values())
    rmap = LogColorMapper(cc.fire, low=1e-3 * rmax, high=rmax)
    wmap = LinearColorMapper(cc.CET_D1A, low=-wlim, high=wlim)
    top_r, bot_r = [], []
    for tag, (resp, w) in keep.items():
        img = np.maximum(resp, 1e-3 * rmax).reshape(rows, cols)
        f = fig(f"response, epoch {tag}", w=200, h=200, x_range=(-0.5, cols - 0.5),
                y_range=(rows - 0.5, -0.5))
        f.image([img], x=-0.5, y=-0.5, dw=cols, dh=rows, color_mapper=rmap)
        g = fig(f"couplings, epoch {tag}", w=200, h=200, x_range=(-0.5, cols - 0.5),
                y_range=(rows - 0.5, -0.5))
        g.segment(xy[net.src, 0], xy[net.src, 1], xy[net.dst, 0], xy[net.dst, 1],
                  line_width=1 + 4 * np.abs(w) / wlim,
                  color=[cc.CET_D1A[int((v / wlim + 1) / 2 * 255)] for v in w])
        for p in (f, g):
            p.axis.visible = p.grid.visible = False
        top_r.append(f)
        bot_r.append(g)
        affected = np.setdiff1d(hidden, marginal(resp, hidden))
        both = np.isin(net.src, affected) & np.isin(net.dst, affected)
        dw = np.abs(w - w0)
        share = f"{dw[both].sum() / dw.sum():.2f}" if dw.sum() > 0 else "-"
        lines.append(f"| {tag} | {hidden.size - affected.size}/{hidden.size} | "
                     f"{both.mean():.2f}, {share} |")
    top_r[-1].add_layout(ColorBar(color_mapper=rmap, width=8), "right")
    bot_r[-1].add_layout(ColorBar(color_mapper=wmap, width=8), "right")
    save_png(gridplot([top_r, bot_r], toolbar_location=None), HERE / "s4_response_maps.png")
    lines += ["", "| seed | marginal hidden sites at epochs 0 / 50 / 150 / end | end |",
              "|---|---|---|"]
    for sd in seeds:
        t, k = track(sd, epochs=(50, 150))
        end = list(k)[-1]
        counts = [marginal(r, hidden).size for r, _ in k.values()]
        lines.append(f"| {sd} | {' / '.join(map(str, counts))} (of {hidden.size}) | {end} |")
    return "\n".join(lines)


# == study 5: digits ========================================================================
def study_digits(rows: list[dict]) -> str:
    lines = ["| network | couplings | test accuracy mean +- sd (5 seeds) | train accuracy | "
             "s per run |", "|---|---|---|---|---|"]
    pts = []
    for label, rs in groups(rows).items():
        n = int(rs[0]["n_couplings"])
        acc = [100 * float(r["test_accuracy"]) for r in rs]
        tr = [100 * float(r["train_accuracy"]) for r in rs]
        sec = st.median(float(r["seconds"]) for r in rs)
        pts.append((label, n, acc))
        lines.append(f"| {label} | {n:,} | {st.mean(acc):.1f} +- {st.stdev(acc):.1f} % | "
                     f"{st.mean(tr):.1f} % | {sec:.0f} |")
    f = fig("Digits (P24 split): test accuracy, 5 seeds", w=560, h=320,
            x_range=[p[0] for p in pts], y_range=(82, 97), y_axis_label="test accuracy (%)")
    for label, _, acc in pts:
        c = COLORS[family(label)]
        f.scatter([label] * len(acc), acc, color=c, size=8, alpha=0.7)
    ref = {"P24 layered 94.1 %": 94.1, "P24 all-to-all N=85 93.3 %": 93.3}
    for (name, v), c in zip(ref.items(), ("#555555", "#aaaaaa"), strict=True):
        f.line([pts[0][0], pts[-1][0]], [v, v], color=c, line_dash="dashed", legend_label=name)
    f.legend.location = "bottom_center"
    f.legend.orientation = "horizontal"
    f.xaxis.major_label_text_font_size = "9pt"
    save_png(f, HERE / "s5_digits.png")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, help="folder holding the sweeps' --out folders")
    ap.add_argument("--only", nargs="*", default=["1", "2", "3", "4", "5"])
    ap.add_argument("--map-seed", type=int, default=1)
    a = ap.parse_args(argv)
    todo = {
        "1": lambda: study_xor(read(a.runs, "s1_xor_architectures")),
        "2": lambda: study_iris(read(a.runs, "s2_iris_size")),
        "3": lambda: study_skips(read(a.runs, "s3_skip_length"), a.runs),
        "4": lambda: study_maps(a.map_seed),
        "5": lambda: study_digits(read(a.runs, "s5_digits")),
    }
    for k in a.only:
        print(f"\n## study {k}\n")
        print(todo[k]())


if __name__ == "__main__":
    main()
