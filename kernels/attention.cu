// Paged attention kernels: a tiled online-softmax kernel over the paged cache, and the split-K reduce.
#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
#include "kernels/common.cuh"

namespace troupe {
namespace {

using namespace detail;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 16;  // query rows (token, head) per CTA
constexpr int kRowsPerWarp = kRows / kWarps;
constexpr int kKeys = 64;  // keys per shared-memory tile
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float2 to_float2(const __nv_bfloat16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}
__device__ __forceinline__ float2 to_float2(const __half* p) {
  return __half22float2(*reinterpret_cast<const __half2*>(p));
}

// Shared memory of the attention kernel for head_dim D: q rows (float), K tile (rows padded by one
// word), V tile, probabilities. Byte offsets are 16-aligned for the vector stores.
template <class T, int D>
struct smem_layout {
  static constexpr int kStride = D + 2;
  static constexpr size_t kOffK = size_t{kRows} * D * 4;
  static constexpr size_t kOffV = kOffK + (size_t{kKeys} * kStride * sizeof(T) + 15) / 16 * 16;
  static constexpr size_t kOffP = kOffV + size_t{kKeys} * D * sizeof(T);
  static constexpr size_t kBytes = kOffP + size_t{kRows} * kKeys * 4;
  static constexpr bool kDynamic = kBytes > 48 * 1024;
};

// Design note: a CTA owns up to 16 query rows (tokens x q heads of one KV group) and walks the keys
// of its split in tiles of 64 through shared memory; each K/V tile is read from the paged cache
// once and used by all rows, which is what makes GQA decode cheap. Scores: lane j of a warp scores
// keys j and j+32 against one row (K rows padded by one word: conflict-free). P·V: lane owns dims
// lane + 32 t. Softmax runs online in base 2 with the scale folded into q. Row r belongs to warp
// r % 4, so decode rows of a small group spread over all warps.
template <class T, int D>
__global__ void __launch_bounds__(kThreads) paged_attention_kernel(paged_attention_args p, float qscale) {
  pdl_wait();
  pdl_launch_dependents();
  constexpr int DPL = (D + 31) / 32;  // output dims per lane
  constexpr int KSTRIDE = smem_layout<T, D>::kStride;
  constexpr int CPR = D / 8;          // 16-byte chunks per K/V row
  // Head dims up to 128 fit the 48 KiB of static shared memory; 256 (Gemma 3) takes ~85 KiB of
  // dynamic shared memory (the launcher raises the kernel's limit). Same layout either way.
  float (*q_s)[D];
  T (*k_s)[KSTRIDE];
  T (*v_s)[D];
  float (*p_s)[kKeys];
  if constexpr (smem_layout<T, D>::kDynamic) {
    extern __shared__ __align__(16) unsigned char attn_smem[];
    q_s = reinterpret_cast<float(*)[D]>(attn_smem);
    k_s = reinterpret_cast<T(*)[KSTRIDE]>(attn_smem + smem_layout<T, D>::kOffK);
    v_s = reinterpret_cast<T(*)[D]>(attn_smem + smem_layout<T, D>::kOffV);
    p_s = reinterpret_cast<float(*)[kKeys]>(attn_smem + smem_layout<T, D>::kOffP);
  } else {
    __shared__ float q_arr[kRows][D];
    __shared__ __align__(16) T k_arr[kKeys][KSTRIDE];
    __shared__ __align__(16) T v_arr[kKeys][D];
    __shared__ float p_arr[kRows][kKeys];
    q_s = q_arr;
    k_s = k_arr;
    v_s = v_arr;
    p_s = p_arr;
  }

  const attention_work w = p.work[blockIdx.x];
  const attention_seq s = p.seqs[w.seq];
  const int kv_head = blockIdx.y / p.head_chunks;
  const int chunk = blockIdx.y % p.head_chunks;
  const int group = p.num_heads / p.cache.num_kv_heads;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int tile_end = min(w.q_offset + p.tile_tokens, s.q_len);
  const int split_len = p.split_len_dev ? *p.split_len_dev : p.split_len;
  const int key_begin = blockIdx.z * split_len;
  const int key_end = min(s.start_pos + tile_end, key_begin + split_len);
  const T* pool = static_cast<const T*>(p.cache.pool);
  const int32_t* table = p.block_tables + static_cast<int64_t>(p.tables_by_row ? s.table_row : w.seq) * p.max_blocks_per_seq;

  auto row_tok = [&](int r) { return w.q_offset + r / p.heads_per_cta; };
  auto row_head = [&](int r) { return kv_head * group + chunk * p.heads_per_cta + r % p.heads_per_cta; };
  auto row_valid = [&](int r) {
    return r < p.tile_tokens * p.heads_per_cta && row_tok(r) < s.q_len &&
           chunk * p.heads_per_cta + r % p.heads_per_cta < group;
  };

#pragma unroll  // all q loads in flight together (a rolled loop waits for each in turn)
  for (int i = threadIdx.x; i < kRows * D; i += kThreads) {
    const int r = i / D, d = i % D;
    float v = 0.f;
    if (row_valid(r)) {
      const T* q = static_cast<const T*>(p.q) + (s.q_begin + row_tok(r)) * p.q_stride + row_head(r) * D;
      v = to_float(q[d]) * qscale;
    }
    q_s[r][d] = v;
  }

  int pos[kRowsPerWarp];  // position of each of this warp's rows; -1 for unused rows
  float m[kRowsPerWarp], l[kRowsPerWarp], o[kRowsPerWarp][DPL];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp + i * kWarps;
    pos[i] = row_valid(r) ? s.start_pos + row_tok(r) : -1;
    m[i] = -INFINITY;
    l[i] = 0.f;
#pragma unroll
    for (int t = 0; t < DPL; ++t) o[i][t] = 0.f;
  }

  for (int k0 = key_begin; k0 < key_end; k0 += kKeys) {
    __syncthreads();  // q_s written; the previous tile fully consumed
    // Every block-table read and K/V load of the tile is issued before any shared-memory store, so
    // they are all in flight at once (a loop interleaving loads and stores made each of its
    // iterations wait for two dependent global loads: ~11 us per tile, measured on the H100).
    constexpr int kIters = 2 * kKeys * CPR / kThreads;
    static_assert(2 * kKeys * CPR % kThreads == 0, "tile chunks must divide among the threads");
    // Head dims above 128 load the tile in two passes (K, then V): 32 loads in flight per thread
    // would take 128 registers and spill (ptxas at D = 256: 255 registers and 180 bytes of spills in
    // one pass, 245 registers and none in two).
    constexpr int kPasses = D > 128 ? 2 : 1;
    constexpr int kPerPass = kIters / kPasses;
    static_assert(kIters % kPasses == 0, "passes must split the tile evenly");
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass) {
      uint4 vals[kPerPass];
#pragma unroll
      for (int u = 0; u < kPerPass; ++u) {
        const int c = threadIdx.x + (pass * kPerPass + u) * kThreads;
        const int kv = c / (kKeys * CPR), cc = c % (kKeys * CPR);
        const int j = cc / CPR, d8 = (cc % CPR) * 8;
        const int key = k0 + j;
        vals[u] = make_uint4(0, 0, 0, 0);  // zeros beyond the split: p = 0 must not meet NaN garbage
        if (key < key_end) {
          const int32_t block = __ldg(table + key / p.cache.block_seq_len);
          vals[u] = __ldg(reinterpret_cast<const uint4*>(
              pool + p.cache.offset(block, p.layer, kv, kv_head, key % p.cache.block_seq_len) + d8));
        }
      }
#pragma unroll
      for (int u = 0; u < kPerPass; ++u) {
        const int c = threadIdx.x + (pass * kPerPass + u) * kThreads;
        const int kv = c / (kKeys * CPR), cc = c % (kKeys * CPR);
        const int j = cc / CPR, d8 = (cc % CPR) * 8;
        if (kv == 0) {
          uint32_t* dst = reinterpret_cast<uint32_t*>(&k_s[j][d8]);
          dst[0] = vals[u].x;
          dst[1] = vals[u].y;
          dst[2] = vals[u].z;
          dst[3] = vals[u].w;
        } else {
          *reinterpret_cast<uint4*>(&v_s[j][d8]) = vals[u];
        }
      }
    }
    __syncthreads();

#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp + i * kWarps;
      if (pos[i] < 0) continue;  // warp-uniform
      float s0 = 0.f, s1 = 0.f;
#pragma unroll 8
      for (int d = 0; d < D; d += 2) {
        const float qa = q_s[r][d], qb = q_s[r][d + 1];
        const float2 ka = to_float2(&k_s[lane][d]);
        const float2 kb = to_float2(&k_s[lane + 32][d]);
        s0 += qa * ka.x + qb * ka.y;
        s1 += qa * kb.x + qb * kb.y;
      }
      const int key0 = k0 + lane, key1 = k0 + lane + 32;
      // Keys beyond the row's position, or (sliding window) at or before pos - window, are masked.
      const int lo = p.window > 0 ? pos[i] - p.window : -1;
      if (key0 >= key_end || key0 > pos[i] || key0 <= lo) s0 = -INFINITY;
      if (key1 >= key_end || key1 > pos[i] || key1 <= lo) s1 = -INFINITY;
      const float tile_max = warp_max(fmaxf(s0, s1));
      float p0 = 0.f, p1 = 0.f;
      if (tile_max != -INFINITY) {
        const float m_new = fmaxf(m[i], tile_max);
        const float corr = exp2f(m[i] - m_new);
        p0 = exp2f(s0 - m_new);
        p1 = exp2f(s1 - m_new);
        l[i] = l[i] * corr + warp_sum(p0 + p1);
        m[i] = m_new;
#pragma unroll
        for (int t = 0; t < DPL; ++t) o[i][t] *= corr;
      }
      p_s[r][lane] = p0;
      p_s[r][lane + 32] = p1;
    }
    __syncwarp();

    const int num_keys = min(kKeys, key_end - k0);
    for (int j = 0; j < num_keys; ++j) {
      float v[DPL];
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int d = lane + 32 * t;
        v[t] = d < D ? to_float(v_s[j][d]) : 0.f;
      }
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        if (pos[i] < 0) continue;
        const float pj = p_s[warp + i * kWarps][j];
#pragma unroll
        for (int t = 0; t < DPL; ++t) o[i][t] += pj * v[t];
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    if (pos[i] < 0) continue;
    const int r = warp + i * kWarps;
    const int64_t tok = s.q_begin + row_tok(r);
    const int head = row_head(r);
    const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
    if (p.num_splits == 1) {
      T* out = static_cast<T*>(p.out) + (tok * p.num_heads + head) * D;
#pragma unroll
      for (int t = 0; t < DPL; ++t)
        if (lane + 32 * t < D) out[lane + 32 * t] = from_float<T>(o[i][t] * inv);
    } else {
      const int64_t idx = (tok * p.num_heads + head) * p.num_splits + blockIdx.z;
#pragma unroll
      for (int t = 0; t < DPL; ++t)
        if (lane + 32 * t < D) p.partial_o[idx * D + lane + 32 * t] = o[i][t] * inv;
      if (lane == 0) {
        p.partial_ml[idx * 2] = m[i];
        p.partial_ml[idx * 2 + 1] = l[i];
      }
    }
  }
}

// Merges the splits of one (token, head): weights l_s * 2^(m_s - M), each partial already
// normalized by its own l_s. One pass with a running maximum, the loads of all splits independent.
template <class T, int D>
__global__ void attention_reduce_kernel(T* __restrict__ out, const float* __restrict__ partial_o,
                                        const float* __restrict__ partial_ml, int num_heads, int num_splits) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t base = (static_cast<int64_t>(blockIdx.x) * num_heads + blockIdx.y) * num_splits;
  const int d = threadIdx.x;
  float M = -INFINITY, L = 0.f, acc = 0.f;
#pragma unroll 16
  for (int s = 0; s < num_splits; ++s) {
    const float ms = partial_ml[(base + s) * 2];
    if (ms == -INFINITY) continue;
    const float ls = partial_ml[(base + s) * 2 + 1];
    const float os = d < D ? partial_o[(base + s) * D + d] : 0.f;
    const float m_new = fmaxf(M, ms);
    const float scale_old = exp2f(M - m_new), w = ls * exp2f(ms - m_new);
    L = L * scale_old + w;
    acc = acc * scale_old + w * os;
    M = m_new;
  }
  if (d < D)
    out[(static_cast<int64_t>(blockIdx.x) * num_heads + blockIdx.y) * D + d] = from_float<T>(L > 0.f ? acc / L : 0.f);
}

template <class T, int D>
cudaError_t launch_typed(const paged_attention_args& a, cudaStream_t stream) {
  const float scale = a.scale > 0.f ? a.scale : 1.f / sqrtf(static_cast<float>(D));
  const dim3 grid(a.num_work, a.cache.num_kv_heads * a.head_chunks, a.num_splits);
  cudaError_t e;
  if constexpr (smem_layout<T, D>::kDynamic) {
    // Per launch, not once: the attribute belongs to the current device's context (TP ranks).
    constexpr int bytes = static_cast<int>(smem_layout<T, D>::kBytes);
    e = cudaFuncSetAttribute(paged_attention_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (e != cudaSuccess) return e;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = bytes;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    e = cudaLaunchKernelEx(&cfg, paged_attention_kernel<T, D>, a, scale * kLog2e);
  } else {
    e = launch_programmatic(true, paged_attention_kernel<T, D>, grid, dim3(kThreads), stream, a, scale * kLog2e);
  }
  if (e != cudaSuccess || a.num_splits == 1) return e;
  const dim3 rgrid(static_cast<unsigned>(a.num_tokens), a.num_heads);
  return launch_programmatic(true, attention_reduce_kernel<T, D>, rgrid, dim3(((D + 31) / 32) * 32), stream,
                             static_cast<T*>(a.out), static_cast<const float*>(a.partial_o),
                             static_cast<const float*>(a.partial_ml), a.num_heads, a.num_splits);
}

// The one place where the runtime head_dim becomes a compile-time constant.
template <class T>
cudaError_t dispatch_head_dim(const paged_attention_args& a, cudaStream_t stream) {
  switch (a.cache.head_dim) {
    case 16: return launch_typed<T, 16>(a, stream);
    case 32: return launch_typed<T, 32>(a, stream);
    case 48: return launch_typed<T, 48>(a, stream);
    case 64: return launch_typed<T, 64>(a, stream);
    case 96: return launch_typed<T, 96>(a, stream);
    case 128: return launch_typed<T, 128>(a, stream);
    case 256: return launch_typed<T, 256>(a, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

bool attention_head_dim_supported(int64_t d) {
  return d == 16 || d == 32 || d == 48 || d == 64 || d == 96 || d == 128 || d == 256;
}

void make_attention_schedule(const attention_seq* seqs, int32_t num_seqs, const attention_schedule_options& o,
                             attention_schedule& out) {
  const int32_t group = std::max(1, o.num_heads / std::max(1, o.num_kv_heads));
  out.heads_per_cta = std::min(group, kRows);
  out.head_chunks = (group + out.heads_per_cta - 1) / out.heads_per_cta;
  out.tile_tokens = std::max(1, kRows / out.heads_per_cta);
  out.work.clear();
  int64_t num_tokens = 0, max_kv = 0;
  for (int32_t i = 0; i < num_seqs; ++i) {
    for (int32_t t = 0; t < seqs[i].q_len; t += out.tile_tokens) out.work.push_back({i, t});
    num_tokens += seqs[i].q_len;
    max_kv = std::max<int64_t>(max_kv, static_cast<int64_t>(seqs[i].start_pos) + seqs[i].q_len);
  }
  const int64_t base = static_cast<int64_t>(out.work.size()) * std::max(1, o.num_kv_heads) * out.head_chunks;
  int64_t splits = 1;
  if (o.max_splits > 1 && base > 0 && base < 2 * int64_t{o.num_sms} && max_kv > 2 * kKeys) {
    splits = std::min<int64_t>({o.max_splits, (2 * int64_t{o.num_sms} + base - 1) / base, (max_kv + 127) / 128});
    while (splits > 1 && num_tokens * o.num_heads * splits > o.partial_capacity) --splits;
  }
  const int64_t per_split = (max_kv + splits - 1) / std::max<int64_t>(splits, 1);
  out.split_len = static_cast<int32_t>(std::max<int64_t>(kKeys, (per_split + kKeys - 1) / kKeys * kKeys));
  out.num_splits = static_cast<int32_t>(std::max<int64_t>(1, (max_kv + out.split_len - 1) / out.split_len));
}

cudaError_t launch_paged_attention(const paged_attention_args& a, cudaStream_t stream) {
  if (a.num_work == 0 || a.num_tokens == 0) return cudaSuccess;
  if (a.num_heads <= 0 || a.cache.num_kv_heads <= 0 || a.num_heads % a.cache.num_kv_heads != 0 ||
      a.num_splits < 1 || a.split_len <= 0 || a.num_tokens > INT32_MAX || a.q_stride % 2 != 0 ||
      (a.num_splits > 1 && (!a.partial_o || !a.partial_ml)))
    return cudaErrorInvalidValue;
  return dispatch_dtype(a.dtype, [&](auto tag) { return dispatch_head_dim<decltype(tag)>(a, stream); });
}

}  // namespace troupe
