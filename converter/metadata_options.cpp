#include "metadata_options.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "trit/error.h"

namespace trit {

std::vector<std::string> preset_names() { return {"keras-resnet50", "torchvision", "raw"}; }

void apply_preset(const std::string& name, Metadata& m) {
  if (name == "keras-resnet50") {
    m.channel_order = ChannelOrder::BGR;
    m.mean = {103.939f, 116.779f, 123.68f};
    m.scale = {1.0f, 1.0f, 1.0f};
    m.resize_shorter = 256;
  } else if (name == "torchvision") {
    m.channel_order = ChannelOrder::RGB;
    m.mean = {123.675f, 116.28f, 103.53f};
    m.scale = {58.395f, 57.12f, 57.375f};
    m.resize_shorter = 256;
  } else if (name == "raw") {
    m.channel_order = ChannelOrder::RGB;
    m.mean = {0.0f, 0.0f, 0.0f};
    m.scale = {1.0f, 1.0f, 1.0f};
    m.resize_shorter = 0;
  } else {
    fail("unknown preset '{}' (known: keras-resnet50, torchvision, raw)", name);
  }
}

static bool is_wnid(const std::string& s) {
  if (s.size() != 9 || s[0] != 'n') return false;
  for (size_t i = 1; i < s.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

std::vector<Label> read_labels(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot read labels '{}': {}", path, std::strerror(errno));
  std::vector<Label> labels;
  std::string line;
  size_t blank_run = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() > 4096) fail("cannot read labels '{}': line {} is longer than 4096 bytes", path, labels.size() + 1);
    if (line.find_first_not_of(" \t") == std::string::npos) {
      ++blank_run;
      continue;
    }
    if (blank_run) fail("cannot read labels '{}': line {} is blank", path, labels.size() + 1);
    const size_t space = line.find(' ');
    const std::string first = line.substr(0, space);
    if (is_wnid(first))
      labels.push_back({first, space == std::string::npos ? "" : line.substr(space + 1)});
    else
      labels.push_back({"", line});
  }
  if (in.bad()) fail("cannot read labels '{}': read error", path);
  if (labels.empty()) fail("cannot read labels '{}': the file has no labels", path);
  return labels;
}

}  // namespace trit
