// Reading and writing .trit files (format: schema/trit.fbs).
//
// load_model treats the file as untrusted input, in three layers, each failure a trit::Error
// of the shape "cannot load model '<path>': <reason>":
//   1. the FlatBuffers verifier (bounded depth and table count), identifier "TRIT", version;
//   2. overflow-safe checks that every Blob lies inside the data section and is 64-byte aligned;
//   3. check_graph (graph_check.h): indices, order, shapes, sizes, metadata.
// The file is memory-mapped read-only and weights are used in place; the returned Graph keeps
// the mapping alive through its Blobs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trit/graph.h"

namespace trit {

// The schema version this build writes and the newest it reads.
inline constexpr uint32_t kFormatVersion = 1;
// Files larger than this are refused before they are mapped.
inline constexpr uint64_t kMaxModelBytes = uint64_t{4} << 30;

Graph load_model(const std::string& path);
// Same checks, on bytes in memory (copied). `name` is used in messages.
Graph load_model_bytes(std::vector<std::byte> bytes, const std::string& name);

// Gives the pages of the file a graph was loaded from back to the OS (madvise DONTNEED): a
// prepared Engine holds its own copy of the weights, so they sit unused. Touching a blob again
// reads it from the file. No effect on graphs not loaded from a file.
void release_file_pages(const Graph& graph);
// The same for the pages of one blob of the graph (a layer's weights, once prepared); nothing
// when the blob does not lie in the graph's file.
void release_file_pages(const Graph& graph, const Blob& blob);

// Serializes a graph (check_graph first). Deterministic: equal graphs give equal bytes.
std::vector<std::byte> serialize_model(const Graph& graph);
// Writes serialize_model(graph) to path. Refuses to replace an existing file unless overwrite.
void save_model(const Graph& graph, const std::string& path, bool overwrite);

}  // namespace trit
