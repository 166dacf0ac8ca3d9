// What trit-convert writes into a model's metadata besides the graph: preprocessing presets and
// class labels.
#pragma once

#include <string>
#include <vector>

#include "trit/graph.h"

namespace trit {

// Named preprocessing recipes. Each sets channel order, mean, scale and resize_shorter.
//   keras-resnet50: BGR, mean [103.939, 116.779, 123.68] (B, G, R), scale 1, shorter side 256
//                   (Keras "caffe" preprocessing; the model scripts/fetch_resnet50.sh makes)
//   torchvision:    RGB, mean [123.675, 116.28, 103.53], scale [58.395, 57.12, 57.375], 256
//   raw:            RGB, mean 0, scale 1, resize straight to the input (e.g. the CIFAR ResNet-8)
std::vector<std::string> preset_names();
// Throws trit::Error for an unknown name.
void apply_preset(const std::string& name, Metadata& metadata);

// Reads a label file: one class a line, in index order. A line that starts with a WordNet id
// (n followed by 8 digits) is "wnid name words..."; any other line is the name alone. Blank
// lines at the end are ignored. Throws trit::Error "cannot read labels '<path>': <reason>".
std::vector<Label> read_labels(const std::string& path);

}  // namespace trit
