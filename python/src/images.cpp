// decode_image, fit_to_input and the conversions between numpy arrays and trit::Image.
#include <cstring>
#include <string>

#include "bindings.h"
#include "trit/error.h"

namespace trit::py {

Image image_from_array(const pb::array& a, const char* what) {
  if (!a.dtype().is(pb::dtype::of<uint8_t>()))
    throw pb::type_error(fmt::format("{} must be a uint8 array, not {}", what, std::string(pb::str(a.dtype()))));
  if (a.ndim() != 3 || a.shape(2) != 3)
    throw pb::value_error(fmt::format("{} must be an HxWx3 RGB array; its shape has {} dimensions{}", what, a.ndim(),
                                      a.ndim() == 3 ? fmt::format(" and {} channels", a.shape(2)) : ""));
  if (a.shape(0) < 1 || a.shape(1) < 1 || a.shape(0) > INT32_MAX || a.shape(1) > INT32_MAX)
    throw pb::value_error(fmt::format("{} must be at least 1x1 and at most 2^31-1 on a side", what));
  const auto c = pb::array_t<uint8_t, pb::array::c_style>::ensure(a);
  Image im;
  im.height = static_cast<int32_t>(a.shape(0));
  im.width = static_cast<int32_t>(a.shape(1));
  im.pixels.assign(c.data(), c.data() + c.size());
  return im;
}

pb::array_t<uint8_t> array_from_image(Image&& image) {
  auto* pixels = new std::vector<uint8_t>(std::move(image.pixels));
  pb::capsule owner(pixels, [](void* p) { delete static_cast<std::vector<uint8_t>*>(p); });
  return pb::array_t<uint8_t>({pb::ssize_t{image.height}, pb::ssize_t{image.width}, pb::ssize_t{3}}, pixels->data(), owner);
}

void bind_images(pb::module_& m) {
  m.def(
      "decode_image",
      [](const std::string& path) {
        Image im;
        {
          pb::gil_scoped_release nogil;
          im = decode_image(path);
        }
        return array_from_image(std::move(im));
      },
      pb::arg("path"), "Decodes a JPEG, PNG or BMP file into an HxWx3 uint8 RGB array.");
  m.def(
      "decode_image_bytes",
      [](const pb::bytes& data, const std::string& name) {
        const std::string_view v(data);
        Image im;
        {
          pb::gil_scoped_release nogil;
          im = decode_image_bytes(std::span(reinterpret_cast<const uint8_t*>(v.data()), v.size()), name);
        }
        return array_from_image(std::move(im));
      },
      pb::arg("data"), pb::arg("name") = "<bytes>", "Decodes an encoded image held in bytes.");
}

}  // namespace trit::py
