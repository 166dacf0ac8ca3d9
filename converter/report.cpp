#include "report.h"

#include <cmath>
#include <filesystem>

#include "trit/json.h"

namespace trit {

double replaced_share(const std::vector<LayerReport>& layers) {
  double macs = 0, mults = 0;
  for (const LayerReport& l : layers) {
    macs += double(l.macs);
    mults += double(l.multiplications);
  }
  return macs > 0 ? 1.0 - mults / macs : 0.0;
}

Agreement compare(const std::vector<float>& f, const std::vector<int32_t>& q, const Tensor& t) {
  const double unit = std::ldexp(1.0, -t.exponent);
  const bool int32 = t.type == ElementType::Int32;
  const Range r = int32 ? Range{0, 0} : range_of(t.type);
  const bool is_signed = t.type == ElementType::Int8;
  double ff = 0, qq = 0, fq = 0, noise = 0;
  int64_t saturated = 0;
  for (size_t j = 0; j < f.size(); ++j) {
    const double v = q[j] * unit;
    ff += double(f[j]) * f[j];
    qq += v * v;
    fq += v * f[j];
    noise += (v - f[j]) * (v - f[j]);
    saturated += !int32 && (q[j] == r.hi || (is_signed && q[j] == r.lo));
  }
  Agreement a;
  a.sqnr_db = noise > 0 ? 10 * std::log10(ff / noise) : 999.0;
  a.cosine = ff > 0 && qq > 0 ? fq / std::sqrt(ff * qq) : (ff == qq ? 1.0 : 0.0);
  a.saturated = f.empty() ? 0.0 : double(saturated) / double(f.size());
  return a;
}

std::string QuantizeReport::json() const {
  std::string s = "{\"layers\": [";
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerReport& l = layers[i];
    s += fmt::format(
        "{}\n  {{\"name\": {}, \"encoding\": \"{}\", \"cluster\": {}, \"cluster_shape\": \"{}\", "
        "\"zero_share\": {:.6f}, \"weight_error\": {:.6f}, \"output_error\": {:.6f}, \"added_error\": {:.6f}, \"trunk_share\": {:.6f}, "
        "\"sqnr_db\": {:.3f}, "
        "\"cosine\": {:.6f}, \"saturated\": {:.6f}, \"macs\": {}, \"multiplications\": {}, \"bytes\": {}, "
        "\"note\": {}}}",
        i ? "," : "", json_quote(l.name), to_string(l.encoding), l.cluster,
        to_string(l.shape), l.zero_share, l.weight_error, l.output_error,
        l.added_error, l.trunk_share, l.sqnr_db, l.cosine, l.saturated, l.macs, l.multiplications, l.bytes, json_quote(l.note));
  }
  s += "\n], \"blocks\": [";
  for (size_t i = 0; i < blocks.size(); ++i) {
    const recon::BlockResult& b = blocks[i];
    std::string curve;
    for (const auto& [it, e] : b.curve) curve += fmt::format("{}[{}, {:.6g}]", curve.empty() ? "" : ", ", it, e);
    s += fmt::format(
        "{}\n  {{\"name\": {}, \"layers\": {}, \"skipped\": {}, \"train_start\": {:.6g}, \"train_end\": {:.6g}, "
        "\"train_last\": {:.6g}, \"held_start\": {:.6g}, \"held_end\": {:.6g}, \"held_last\": {:.6g}, \"flipped\": {:.6f}, "
        "\"best_iteration\": {}, \"kept\": {}, \"seconds\": {:.2f}, \"curve\": [{}]}}",
        i ? "," : "", json_quote(b.name), b.layers, json_quote(b.skipped), b.train_start, b.train_end, b.train_last,
        b.held_start, b.held_end, b.held_last,
        b.flipped, b.best_iteration, b.kept, b.seconds, curve);
  }
  s += "\n], \"calibration_images\": [";
  for (size_t i = 0; i < calibration_images.size(); ++i)
    s += (i ? ", " : "") + json_quote(std::filesystem::path(calibration_images[i]).filename().string());
  s += fmt::format("], \"multiplications_replaced\": {:.6f}}}\n", replaced_share());
  return s;
}

}  // namespace trit
