#!/usr/bin/python3
"""Per-layer error of a quantized model against float32, as a table and a bar chart.

    scripts/plot_layer_report.py REPORT.json [-o layers.png] [--md layers.md] [--worst K]

REPORT.json is what `trit-convert ... --report REPORT.json` writes: for each layer, the SQNR and
cosine similarity of the integer network's output tensor against the float network's on the
calibration images, the share of saturated outputs, and the layer's own output error. The chart
has one bar of SQNR per layer (coloured by weight encoding) and the saturated share on a second
axis: the layer where SQNR falls off a cliff, or saturation climbs, is the one that breaks the
model. Needs python3-matplotlib for the PNG; the table needs nothing.
"""
import argparse
import json
import sys


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        layers = report["layers"]
        for layer in layers:
            for key in ("name", "encoding", "sqnr_db", "cosine", "saturated", "output_error"):
                layer[key]  # noqa: B018 (presence check)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"plot_layer_report: cannot read '{path}' as a trit-convert report: {e}")
    return report


def describe(layer):
    if layer["encoding"] in ("ternary", "int4"):
        return f"{layer['encoding']} N={layer['cluster']} {layer['cluster_shape']}"
    return layer["encoding"]


def markdown(report, worst=0):
    layers = report["layers"]
    lines = ["| # | layer | weights | SQNR (dB) | cosine | saturated | layer output error |",
             "|---|---|---|---|---|---|---|"]
    order = range(len(layers))
    if worst:
        order = sorted(order, key=lambda i: layers[i]["sqnr_db"])[:worst]
    for i in order:
        layer = layers[i]
        lines.append(f"| {i + 1} | {layer['name']} | {describe(layer)} | {layer['sqnr_db']:.1f} | "
                     f"{layer['cosine']:.4f} | {100 * layer['saturated']:.2f} % | {layer['output_error']:.3f} |")
    return "\n".join(lines)


def plot(report, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("plot_layer_report: the PNG needs python3-matplotlib (apt-get install python3-matplotlib)")
    layers = report["layers"]
    colours = {"int8": "tab:blue", "int4": "tab:green", "ternary": "tab:orange", "float32": "tab:gray"}
    x = range(len(layers))
    fig, ax = plt.subplots(figsize=(max(8, 0.22 * len(layers) + 2), 4.8))
    ax.bar(x, [layer["sqnr_db"] for layer in layers], color=[colours.get(layer["encoding"], "tab:red") for layer in layers])
    ax.set_ylabel("SQNR against float32 (dB)")
    ax.set_xticks(list(x))
    ax.set_xticklabels([layer["name"] for layer in layers], rotation=90, fontsize=6)
    ax.set_xlim(-0.6, len(layers) - 0.4)
    sat = ax.twinx()
    sat.plot(list(x), [100 * layer["saturated"] for layer in layers], color="black", marker=".", linewidth=1)
    sat.set_ylabel("saturated outputs (%)")
    sat.set_ylim(bottom=0)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for e, c in colours.items() if any(layer["encoding"] == e for layer in layers)]
    names = [e for e in colours if any(layer["encoding"] == e for layer in layers)]
    ax.legend(handles + [plt.Line2D([], [], color="black", marker=".")], names + ["saturated"], loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("report", help="the JSON of trit-convert --report")
    p.add_argument("-o", "--png", help="write the bar chart here")
    p.add_argument("--md", help="write the table here (it is printed in any case)")
    p.add_argument("--worst", type=int, default=0, help="print only the K layers with the lowest SQNR")
    p.add_argument("--title", help="chart title")
    a = p.parse_args(argv)
    report = load(a.report)
    table = markdown(report, a.worst)
    print(table)
    if a.md:
        with open(a.md, "w", encoding="utf-8") as f:
            f.write(markdown(report) + "\n")
    if a.png:
        n = len(report.get("calibration_images", []))
        plot(report, a.png, a.title or f"{a.report}: per-layer error against float32 on {n} calibration images")


if __name__ == "__main__":
    main(sys.argv[1:])
