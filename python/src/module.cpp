// PYBIND11_MODULE: trit._trit, the exception type and the bindings of each part.
#include "bindings.h"

#include "trit/error.h"

PYBIND11_MODULE(_trit, m) {
  m.doc() = "trit's compiled module; use the package `trit`, which wraps it";
  pybind11::register_exception<trit::Error>(m, "Error", PyExc_RuntimeError);
  trit::py::bind_images(m);
  trit::py::bind_model(m);
  trit::py::bind_convert(m);
}
