"""trit: integer-only ResNet inference (8-bit activations; ternary, 4-bit or 8-bit weights).

    import trit
    model = trit.Model.load("models/resnet50.trit")
    with model.session() as s:
        for p in s.classify("cat.jpg", k=5):          # a path, an HxWx3 uint8 array or a PIL image
            print(p.label, p.probability)
        logits = s.logits(batch)                        # NxHxWx3 uint8 (fitted) or NxCxHxW float32

    report = trit.convert("resnet50.onnx", "r50-t4.trit", preset="keras-resnet50",
                          weights="ternary", cluster=4, calib="photos/", progress=True)

The compiled module (trit._trit) wraps the C++ API, which is the one implementation: the same
models, the same bits as `infer` and `trit-eval`. Runs release the GIL, so Python threads can
each drive a session (one session per thread runs in parallel; calls on one shared session take
turns). Failures raise trit.Error (a RuntimeError) with the library's one-line message; a wrong
dtype raises TypeError and a wrong shape or value ValueError.
"""
from __future__ import annotations

import collections
import os
import sys

import numpy as np

from . import _trit
from ._trit import Error

__all__ = ["Error", "Model", "Session", "Prediction", "decode_image", "fit_to_input", "convert"]

Prediction = collections.namedtuple("Prediction", "index wnid label probability")
Prediction.__doc__ = "One class of classify(): its index, WordNet id, label and softmax probability."


def _path(p, what):
    try:
        return os.fspath(p)
    except TypeError:
        raise TypeError(f"{what} must be a path (str or os.PathLike), not {type(p).__name__}") from None


def _is_pil(x):
    return type(x).__module__.startswith("PIL.") and hasattr(x, "convert")


def _pixels(image):
    """An HxWx3 uint8 array from a path, bytes, a PIL image or an array (arrays are passed as is)."""
    if isinstance(image, np.ndarray):
        return image
    if _is_pil(image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _trit.decode_image_bytes(bytes(image))
    if isinstance(image, (str, os.PathLike)):
        return _trit.decode_image(os.fspath(image))
    raise TypeError(f"an image must be a path, bytes, an HxWx3 uint8 numpy array or a PIL image, "
                    f"not {type(image).__name__}")


def decode_image(source):
    """Decodes a JPEG, PNG or BMP (a path, or the encoded bytes) into an HxWx3 uint8 RGB array."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _trit.decode_image_bytes(bytes(source))
    return _trit.decode_image(_path(source, "decode_image's source"))


def fit_to_input(image, model):
    """The image resized and centre-cropped as the model's metadata says: an HxWx3 uint8 array
    of the model's input size (what Session.logits takes, stacked into a batch)."""
    if not isinstance(model, Model):
        raise TypeError(f"fit_to_input's model must be a trit.Model, not {type(model).__name__}")
    return model._m.fit(_pixels(image))


class _Closable:
    """close(), closed and the `with` block, over the compiled object in self._c."""

    closed = property(lambda self: self._c.closed)

    def close(self):
        self._c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Model(_Closable):
    """A loaded model, immutable and shared by any number of sessions and threads.

    Closing it (close(), or leaving a `with` block) releases it once its sessions are closed
    too; using a closed model raises trit.Error."""

    def __init__(self, compiled):
        self._m = self._c = compiled

    @staticmethod
    def load(path, *, memory_limit: int = 8 << 30, isa: str = "", dynamic_exponents: bool = False,
             packed_weights: bool = False) -> "Model":
        """Loads a .trit model (checked: a corrupt or hostile file raises trit.Error).

        memory_limit: the most bytes the model's prepared weights, and each session's
        activations, may take (trit.Error beyond). isa: "", "ref", "avx2", "avx512vnni" or "amx" ("" is
        the best this CPU runs, or $TRIT_ISA). dynamic_exponents: integer models take each
        activation's exponent from its own values (the slower reference executor).
        packed_weights: ternary and int4 layers keep their weights packed in memory, expanded a
        layer at a time per run (the same answers, about a quarter of the weights' memory)."""
        if not isinstance(memory_limit, int) or isinstance(memory_limit, bool):
            raise TypeError("memory_limit must be an int (bytes)")
        return Model(_trit.Model.load(_path(path, "the model's path"), memory_limit=memory_limit, isa=isa,
                                      dynamic_exponents=dynamic_exponents, packed_weights=packed_weights))

    def session(self, max_batch: int = 8) -> "Session":
        """A session: the memory runs need, for up to max_batch images a run (longer batches
        are run max_batch at a time). One per thread for parallel runs."""
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an int of at least 1, not {max_batch!r}")
        return Session(self._m.session(max_batch))

    path = property(lambda self: self._m.path, doc="the file it was loaded from")
    input_shape = property(lambda self: self._m.input_shape, doc="(channels, height, width)")
    classes = property(lambda self: self._m.classes, doc="the number of classes")
    labels = property(lambda self: self._m.labels, doc="[(wnid, label)] per class, or [] when it has none")
    metadata = property(lambda self: self._m.metadata, doc="preprocessing and provenance")
    is_integer = property(lambda self: self._m.is_integer, doc="whether it runs the integer pipeline")
    engine = property(lambda self: self._m.engine, doc='what runs it: "avx2", "integer reference", ...')

    def __repr__(self):
        if self.closed:
            return f"<trit.Model {self.path!r} (closed)>"
        return f"<trit.Model {self.path!r} input {self.input_shape} classes {self.classes} engine {self.engine!r}>"


class Session(_Closable):
    """Runs a model. Not for several threads at once: calls on one session from several
    threads take turns (make one session per thread to run in parallel)."""

    def __init__(self, compiled):
        self._s = self._c = compiled

    def classify(self, image, k: int = 5) -> list:
        """The top k classes of one image (a path, encoded bytes, an HxWx3 uint8 array of any
        size, or a PIL image), most probable first: [Prediction(index, wnid, label, probability)]."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be an int of at least 1, not {k!r}")
        if isinstance(image, (str, os.PathLike)):
            top = self._s.classify_path(os.fspath(image), k)
        else:
            top = self._s.classify_array(_pixels(image), k)
        return [Prediction(*p) for p in top]

    def logits(self, batch) -> np.ndarray:
        """[N, classes] float32 logits of a batch: N fitted images (uint8 NxHxWx3, see
        fit_to_input) or N normalized tensors (float32 NxCxHxW). A C-contiguous array is read
        where it lies; other layouts are copied once; other dtypes raise TypeError."""
        if not isinstance(batch, np.ndarray):
            raise TypeError(f"logits takes a numpy array, not {type(batch).__name__}")
        return self._s.logits(batch)

    max_batch = property(lambda self: self._s.max_batch)


# Python keywords whose trit-convert option is spelled otherwise.
_OPTION_NAMES = {"shape": "cluster-shape", "keep": "keep-8bit", "out": "output"}


def _words(onnx, out, options):
    words = [_path(onnx, "the ONNX model's path"), "--output", _path(out, "the output path")]
    for key, value in options.items():
        name = "--" + _OPTION_NAMES.get(key, key.replace("_", "-"))
        if value is None:
            continue
        if key == "bias_correction":
            words.append("--bias-correction" if value else "--no-bias-correction")
        elif isinstance(value, bool):
            if value:
                words.append(name)
        elif key == "layer":
            items = value.items() if isinstance(value, dict) else [(None, v) for v in value]
            for layer, enc in items:
                words += [name, enc if layer is None else f"{layer}={enc}"]
        elif isinstance(value, (list, tuple)):
            words += [name, ",".join(str(v) for v in value)]
        elif isinstance(value, os.PathLike):
            words += [name, os.fspath(value)]
        else:
            words += [name, str(value)]
    return words


class _Bars:
    """progress=True: tqdm bars (Debian's python3-tqdm) for the float pass and the layers,
    notes and block lines written above them; plain lines on stderr when tqdm is missing."""

    def __init__(self):
        try:
            import tqdm
            self.tqdm = tqdm.tqdm
        except ImportError:
            self.tqdm = None
        self.bars = {}

    def __call__(self, stage, done, total, line):
        if self.tqdm is None:
            if stage in ("note", "block", "layer") or done == total:
                print(line, file=sys.stderr, flush=True)
            return
        if stage in ("float", "layer", "synthetic"):
            bar = self.bars.get(stage)
            if bar is None or bar.total != total:
                if bar is not None:
                    bar.close()
                desc, unit = {"float": ("float network", "image"), "layer": ("layers", "layer"),
                              "synthetic": ("synthetic images", "step")}[stage]
                bar = self.bars[stage] = self.tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)
            bar.update(done - bar.n)
            if stage == "layer":
                bar.set_postfix_str(line.split()[2] if len(line.split()) > 2 else "")
            if done == total:
                bar.close()
                del self.bars[stage]
        else:
            (self.tqdm.write if self.tqdm else print)(line, file=sys.stderr)

    def close(self):
        for bar in self.bars.values():
            bar.close()


def convert(onnx, out, *, progress=None, **options) -> dict:
    """Converts an ONNX ResNet into a trit model, as trit-convert does, with the same options
    as keywords (--cluster-shape is cluster_shape or shape, --keep-8bit keep_8bit or keep; a
    flag is True; --mean/--scale take lists; layer takes {name: encoding}):

        trit.convert("r50.onnx", "r50-t4.trit", preset="keras-resnet50", weights="ternary",
                     cluster=4, shape="kernels", calib="photos/", calib_count=0, reconstruct=True)

    progress: None (quiet), True (tqdm bars on stderr), or a callable
    progress(stage, done, total, line) with stage "note", "synthetic" (calib="synthetic": each
    optimization step), "float", "layer" or "block" and the
    line trit-convert would print. Ctrl-C, or an exception from the callable, stops the
    conversion and no file is written; an existing `out` is replaced only with force=True.

    Returns {"output", "nodes", "parameters", "batch_norms_folded", "labels", "report"}, the
    report being the per-layer and per-block report (trit-convert --report) for integer
    weights, or None for float."""
    if not _trit.has_converter:
        raise Error("cannot convert: trit was built without the converter (TRIT_BUILD_CONVERTER=OFF)")
    words = _words(onnx, out, options)
    if progress is True:
        bars = _Bars()
        try:
            return _trit.convert(words, bars)
        finally:
            bars.close()
    if progress is not None and progress is not False and not callable(progress):
        raise TypeError("progress must be None, True or a callable(stage, done, total, line)")
    return _trit.convert(words, progress or None)
