// The float fast path: convolutions and fully connected layers as im2col and OpenBLAS sgemm,
// split over oneTBB's threads. What a float32 Session runs (FloatExecutor, FloatPath::Gemm), and
// the forward and backward products of the converter's block reconstruction.
//
// Not the specification: the float reference (kernels/float_ref.h) is. sgemm sums each output in
// its own order and with fused multiply-adds, so results differ from the reference's by rounding:
// on ResNet-50's logits (about +-20) by about 1e-4, tested with a stated tolerance
// (test_float_gemm.cpp). They depend neither on the thread count nor on the batch (see gemm(),
// conv2d()), but they may depend on the CPU (OpenBLAS picks its kernels at run time), which is why the converter
// calibrates with the reference's bits.
//
// OpenBLAS runs single-threaded inside each oneTBB task: its own threads would spin beside
// oneTBB's and ignore the caller's task_arena. prepare_single_threaded_blas() sets that for the
// process (OpenBLAS's thread count is global).
//
// Layout and bounds as float_ref.h: images [N][C][H][W], weights [O][I][KH][KW] (read as the
// row-major matrix [O][K], K = I * KH * KW); extents >= 1, pads in [0, kernel - 1], outputs of
// Window::out_h/out_w; every extent product below 2^31 (sgemm takes int).
#pragma once

#include <cstdint>
#include <utility>

#include "trit/types.h"

namespace trit::blas {

// Sets OpenBLAS's thread count to 1 for the process (idempotent, thread-safe).
void prepare_single_threaded_blas();

// C = op(A) op(B) + beta C (row-major; op transposes when asked), as single-threaded sgemm calls
// on blocks of C's columns (or of its rows when it has few columns) over oneTBB's threads. The
// blocks are fixed by the shapes, never by the thread count, so every element of C is computed
// the same way whatever the threads.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc);

// The output pixels [ox0, ox1) whose tap kx reads inside the input along x.
std::pair<int32_t, int32_t> inside(int32_t out_w, int32_t in_w, int32_t stride, int32_t pad, int32_t kx);

// The columns of one image x [C][H][W]: row r = (c, ky, kx) holds the OH * OW taps of the output
// pixels, at cols + r * stride (padded taps 0).
void im2col(Shape3 in, Shape3 out, const Window& w, const float* x, float* cols, int64_t stride);

// Floats of scratch conv2d needs for `batch` images: their columns (0 for a 1x1, stride-1,
// unpadded convolution, which reads its input in place).
int64_t conv2d_scratch(Shape3 in, Shape3 out, const Window& w, int32_t batch);

// y [N][O][OH][OW] = conv(x [N][C][H][W], w [O][K]) + bias (bias may be null: 0), then ReLU when
// act == Relu. Image by image (sgemm on blocks of each image's output), so that an image's result
// depends neither on the thread count nor on the other images of its batch. scratch holds
// conv2d_scratch(...) floats. y must not overlap x.
void conv2d(const float* x, Shape3 in, int32_t batch, const float* w, const float* bias, const Window& window,
            Activation act, float* y, Shape3 out, float* scratch);

// y [N][O] = x [N][K] w^T + bias, then ReLU when act == Relu; w is [O][K]. Image by image too.
void fully_connected(const float* x, int32_t batch, int32_t k, const float* w, const float* bias, Activation act,
                     float* y, int32_t o);

}  // namespace trit::blas
