#!/usr/bin/python3
"""The Python module in a few lines: classify photos, then run them as one numpy batch.

    PYTHONPATH=build/python samples/python/classify.py models/resnet50.trit ../shared/data/photos/*.jpg

(After `cmake --install build --prefix /usr/local`, /usr/bin/python3 finds `trit` without
PYTHONPATH.)"""
import sys

import numpy as np

import trit


def main(model_path, photos):
    model = trit.Model.load(model_path)
    print(f"{model_path}: input {model.input_shape}, {model.classes} classes, engine {model.engine}")
    with model.session(max_batch=8) as session:
        for photo in photos:
            best = session.classify(photo, k=3)
            print(photo, "  ".join(f"{p.label} {100 * p.probability:.1f}%" for p in best))
        # The same photos as one batch: decoded and fitted to the input in Python, run at once.
        batch = np.stack([trit.fit_to_input(trit.decode_image(p), model) for p in photos])
        logits = session.logits(batch)  # [N, classes] float32
        print("batch top-1:", [model.labels[i][1] if model.labels else int(i) for i in logits.argmax(axis=1)])


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(f"usage: {sys.argv[0]} MODEL.trit PHOTO...")
    try:
        main(sys.argv[1], sys.argv[2:])
    except trit.Error as e:
        sys.exit(f"classify: {e}")
