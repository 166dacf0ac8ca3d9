#!/usr/bin/python3
"""The demo's side-by-side table: each model's top class and probability on each photo, then its
file size, the share of multiplications its weights replace by additions, and its time per image.

Usage: demo_table.py INFER --model NAME MODEL.trit [--model NAME MODEL.trit ...] PHOTO...

Runs INFER (build/bin/infer) once per model with --json. A model's share of multiplications
replaced comes from MODEL.report.json beside it (trit-convert --report) when there is one, else
it is 0 (float32). The time per image is the fastest of the photos' (the first one warms up).
"""
import argparse
import json
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("infer")
    ap.add_argument("--model", action="append", nargs=2, required=True, metavar=("NAME", "MODEL"))
    ap.add_argument("photos", nargs="+")
    args = ap.parse_args()

    columns = []
    for name, path in args.model:
        out = subprocess.run([args.infer, "--model", path, "--json", "--top", "1", *args.photos],
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"demo_table: infer failed on {path}: {out.stderr.strip()}")
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        report = os.path.splitext(path)[0] + ".report.json"
        replaced = json.load(open(report))["multiplications_replaced"] if os.path.exists(report) else 0.0
        columns.append({
            "name": name,
            "answers": [f'{r["top"][0]["label"]} {100 * r["top"][0]["prob"]:.0f} %' for r in rows],
            "size": f"{os.path.getsize(path) / 1e6:.1f} MB",
            "replaced": f"{100 * replaced:.1f} %",
            "ms": f'{min(r["ms"] for r in rows):.1f} ms',
        })

    lines = [["photo"] + [c["name"] for c in columns]]
    for i, photo in enumerate(args.photos):
        lines.append([os.path.basename(photo)] + [c["answers"][i] for c in columns])
    lines.append(["file size"] + [c["size"] for c in columns])
    lines.append(["multiplications replaced"] + [c["replaced"] for c in columns])
    lines.append(["time per image"] + [c["ms"] for c in columns])
    widths = [max(len(line[k]) for line in lines) for k in range(len(lines[0]))]
    for j, line in enumerate(lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if j == 0 or j == len(args.photos):
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
