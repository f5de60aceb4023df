// y = x @ W.T + b for a few float32 rows x and a float16-stored weight W, on x86-64 CPUs with
// AVX2, FMA and F16C. See half_linear.py for why it exists, the layout and the reference.
//
// Every product and sum runs in float32: each weight is widened to float32 exactly (F16C) before
// it is multiplied, so for a weight whose float32 values are float16 values (Whisper's released
// checkpoints) the result is x @ W.T to float32 rounding, at half the bytes read per call.
//
// Layout of the packed weight (pack_half in half_linear.py): (NB, D, 16) float16, NB = ceil(V /
// 16); block nb holds output rows 16 nb .. 16 nb + 15 column by column, so the inner loop reads
// one contiguous 32-byte line per input channel. Rows past V are zeros.
//
// block_linear: the same loop over float32 blocks (pack_blocks), for N weights at once: the
// heads of a search step's cross-attention, whose keys (and transposed values) are packed once
// per utterance, so a step streams them at memory speed (half_linear.py: blocked_attention).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>
#include <immintrin.h>

#include <cstdint>

namespace {

constexpr int64_t kBlock = 16;  // output channels per block: two 8-lane registers
constexpr int kMaxRows = 6;     // 2 x 6 accumulators + 2 weights + 1 broadcast fit 16 registers

// How a block's 16 weights of one input channel become two float32 registers.
struct Half {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
};
struct Float {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
};

// Rows [0, R) of x (R, D) against blocks [b0, b1): out (R, V), out[r, v] = bias[v] + sum_d.
template <int R, typename W>
void blocks(const float* x, int64_t ldx, const typename W::T* w, const float* bias, float* out,
            int64_t ldo, int64_t V, int64_t D, int64_t b0, int64_t b1) {
  for (int64_t nb = b0; nb < b1; ++nb) {
    const typename W::T* wp = w + nb * D * kBlock;
    __m256 lo[R], hi[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      lo[r] = _mm256_setzero_ps();
      hi[r] = _mm256_setzero_ps();
    }
    for (int64_t d = 0; d < D; ++d) {
      const __m256 w_lo = W::load(wp + d * kBlock);
      const __m256 w_hi = W::load(wp + d * kBlock + 8);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256 xr = _mm256_broadcast_ss(x + r * ldx + d);
        lo[r] = _mm256_fmadd_ps(xr, w_lo, lo[r]);
        hi[r] = _mm256_fmadd_ps(xr, w_hi, hi[r]);
      }
    }
    const int64_t v = nb * kBlock;
    if (v + kBlock <= V) {
      const __m256 b_lo = bias ? _mm256_loadu_ps(bias + v) : _mm256_setzero_ps();
      const __m256 b_hi = bias ? _mm256_loadu_ps(bias + v + 8) : _mm256_setzero_ps();
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        _mm256_storeu_ps(out + r * ldo + v, _mm256_add_ps(lo[r], b_lo));
        _mm256_storeu_ps(out + r * ldo + v + 8, _mm256_add_ps(hi[r], b_hi));
      }
    } else {  // the last block, partly past V
      alignas(32) float tmp[kBlock];
      // Unrolled like every loop over r: one lo[r] indexed at run time and GCC keeps the
      // accumulators on the stack, storing all 2 R of them at every d (2-3x slower).
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        _mm256_store_ps(tmp, lo[r]);
        _mm256_store_ps(tmp + 8, hi[r]);
        for (int64_t j = 0; v + j < V; ++j) out[r * ldo + v + j] = tmp[j] + (bias ? bias[v + j] : 0.f);
      }
    }
  }
}

template <typename W>
using BlockFn = void (*)(const float*, int64_t, const typename W::T*, const float*, float*, int64_t,
                         int64_t, int64_t, int64_t, int64_t);

template <typename W>
BlockFn<W> block_fn(int64_t rows) {
  constexpr BlockFn<W> fns[kMaxRows + 1] = {nullptr,      blocks<1, W>, blocks<2, W>, blocks<3, W>,
                                            blocks<4, W>, blocks<5, W>, blocks<6, W>};
  return fns[rows];
}

// x (R, D) float32, packed (NB, D, 16) float16, bias (V,) float32 or None -> (R, V) float32.
at::Tensor half_linear(const at::Tensor& x, const at::Tensor& packed,
                       const std::optional<at::Tensor>& bias, int64_t V) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.device().is_cpu(),
              "half_linear: x must be a 2-D float32 CPU tensor");
  TORCH_CHECK(packed.dim() == 3 && packed.size(2) == kBlock && packed.scalar_type() == at::kHalf &&
                  packed.is_contiguous() && packed.device().is_cpu(),
              "half_linear: packed must be a contiguous (NB, D, 16) float16 CPU tensor");
  const int64_t R = x.size(0), D = x.size(1), NB = packed.size(0);
  TORCH_CHECK(packed.size(1) == D, "half_linear: x has ", D, " channels, the weight ", packed.size(1));
  TORCH_CHECK(V > (NB - 1) * kBlock && V <= NB * kBlock, "half_linear: ", V, " outputs do not fit ",
              NB, " blocks");
  const float* b = nullptr;
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == V && bias->scalar_type() == at::kFloat &&
                    bias->is_contiguous() && bias->device().is_cpu(),
                "half_linear: bias must be a contiguous (V,) float32 CPU tensor");
    b = bias->data_ptr<float>();
  }
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty({R, V}, x.options());
  const float* xp = xc.data_ptr<float>();
  const uint16_t* wp = reinterpret_cast<const uint16_t*>(packed.data_ptr<at::Half>());
  float* op = out.data_ptr<float>();
  // Rows in groups of at most kMaxRows: each group reads the weight once more, which is why the
  // caller sends only a few rows (half_linear.py: MAX_ROWS).
  for (int64_t r0 = 0; r0 < R; r0 += kMaxRows) {
    const int64_t rows = std::min<int64_t>(kMaxRows, R - r0);
    const BlockFn<Half> fn = block_fn<Half>(rows);
    at::parallel_for(0, NB, 16, [&](int64_t s, int64_t e) {
      fn(xp + r0 * D, D, wp, b, op + r0 * V, V, V, D, s, e);
    });
  }
  return out;
}

// x (N, R, D) float32, packed (N, NB, D, 16) float32 -> (N, R, V) float32: out[n] = x[n] @ W[n].T
// for N independent weights.
at::Tensor block_linear(const at::Tensor& x, const at::Tensor& packed, int64_t V) {
  TORCH_CHECK(x.dim() == 3 && x.scalar_type() == at::kFloat && x.device().is_cpu(),
              "block_linear: x must be a 3-D float32 CPU tensor");
  TORCH_CHECK(packed.dim() == 4 && packed.size(3) == kBlock && packed.scalar_type() == at::kFloat &&
                  packed.is_contiguous() && packed.device().is_cpu(),
              "block_linear: packed must be a contiguous (N, NB, D, 16) float32 CPU tensor");
  const int64_t N = x.size(0), R = x.size(1), D = x.size(2), NB = packed.size(1);
  TORCH_CHECK(packed.size(0) == N, "block_linear: ", N, " inputs, ", packed.size(0), " weights");
  TORCH_CHECK(packed.size(2) == D, "block_linear: x has ", D, " channels, the weights ", packed.size(2));
  TORCH_CHECK(V > (NB - 1) * kBlock && V <= NB * kBlock, "block_linear: ", V, " outputs do not fit ",
              NB, " blocks");
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty({N, R, V}, x.options());
  const float* xp = xc.data_ptr<float>();
  const float* wp = packed.data_ptr<float>();
  float* op = out.data_ptr<float>();
  for (int64_t r0 = 0; r0 < R; r0 += kMaxRows) {
    const int64_t rows = std::min<int64_t>(kMaxRows, R - r0);
    const BlockFn<Float> fn = block_fn<Float>(rows);
    // Work items are (weight, block) pairs, so a few large weights split as well as many small.
    at::parallel_for(0, N * NB, 4, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e;) {
        const int64_t n = i / NB, b0 = i % NB, b1 = std::min(NB, b0 + (e - i));
        fn(xp + (n * R + r0) * D, D, wp + n * NB * D * kBlock, nullptr, op + (n * R + r0) * V, V,
           V, D, b0, b1);
        i += b1 - b0;
      }
    });
  }
  return out;
}

}  // namespace

TORCH_LIBRARY(speechkit_cpu, m) {
  m.def("half_linear(Tensor x, Tensor packed, Tensor? bias, int V) -> Tensor");
  m.impl("half_linear", c10::DispatchKey::CPU, TORCH_FN(half_linear));
  m.def("block_linear(Tensor x, Tensor packed, int V) -> Tensor");
  m.impl("block_linear", c10::DispatchKey::CPU, TORCH_FN(block_linear));
}
