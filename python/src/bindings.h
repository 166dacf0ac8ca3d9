// The compiled half of the `trit` Python package (pybind11): thin wrappers over the C++ API,
// which stays the one implementation. python/trit/__init__.py is the public face (paths, PIL
// images, keyword options, progress bars); this module is what it calls.
//
// Invariants every binding keeps:
//   - Runs, loads and conversions release the GIL; nothing touches a Python object while it is
//     released (arrays are checked and their buffers taken first, results built after).
//   - trit::Error becomes trit.Error (a RuntimeError) with the same one-line message; a wrong
//     dtype is TypeError, a wrong shape or value ValueError; a closed model or session raises
//     trit.Error. Nothing that Python can pass makes the process abort.
//   - Arrays are read where they lie when they are C-contiguous and of the right dtype; any
//     other layout of the right dtype is copied once; other dtypes are refused, never cast.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "trit/image.h"

namespace trit::py {

namespace pb = pybind11;

// An HxWx3 uint8 array as an Image (copied: Image owns its pixels).
Image image_from_array(const pb::array& a, const char* what);
// The image's pixels as an HxWx3 uint8 array that owns them (no copy).
pb::array_t<uint8_t> array_from_image(Image&& image);

void bind_images(pb::module_& m);
void bind_model(pb::module_& m);
void bind_convert(pb::module_& m);  // raises trit.Error when built without the converter

}  // namespace trit::py
