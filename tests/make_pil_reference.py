#!/usr/bin/python3
"""Writes what PIL (Debian's python3-pil) makes of lossless photos, for the exact resize tests.

Usage: make_pil_reference.py PHOTO_DIR OUTDIR
For each of cat.bmp and grace_hopper.bmp in PHOTO_DIR, writes to OUTDIR:
  NAME.decoded.rgb  the decoded RGB pixels
  NAME.fit.rgb      resize of the shorter side to 256 (bilinear, antialiased) then centre crop
                    224, as torchvision's Resize(256) + CenterCrop(224) do on a PIL image
  NAME.odd.rgb      a resize to 97x61 (both axes down, odd sizes)
  NAME.up.rgb       a resize to 1.5x the size (both axes up)
and NAME.sizes, the "width height" of each of those four images, one a line.
"""
import os
import sys

from PIL import Image


def fit(img, shorter=256, crop=224):
    w, h = img.size
    if w <= h:
        size = (shorter, int(shorter * h / w))
    else:
        size = (int(shorter * w / h), shorter)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    top = int(round((h - crop) / 2.0))
    left = int(round((w - crop) / 2.0))
    return img.crop((left, top, left + crop, top + crop))


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for name in ("cat.bmp", "grace_hopper.bmp"):
        img = Image.open(os.path.join(src, name)).convert("RGB")
        w, h = img.size
        results = [("decoded", img), ("fit", fit(img)), ("odd", img.resize((97, 61), Image.BILINEAR)),
                   ("up", img.resize((w * 3 // 2, h * 3 // 2), Image.BILINEAR))]
        with open(os.path.join(out, name + ".sizes"), "w") as sizes:
            for kind, im in results:
                with open(os.path.join(out, f"{name}.{kind}.rgb"), "wb") as f:
                    f.write(im.tobytes())
                sizes.write(f"{im.size[0]} {im.size[1]}\n")


if __name__ == "__main__":
    main()
