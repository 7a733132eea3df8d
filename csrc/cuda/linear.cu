// linear's bias gradient on CUDA: column sums of dY[R x out] without float atomics. Blocks of
// 32 columns x 8 row lanes; lane y of a block sums rows y, y + 8, ... of its row chunk, the 8
// lanes are added in lane order, and with several chunks a second kernel adds the chunks' sums
// in chunk order. Every sum has a fixed order: the same bits on every run.
#include "cuda/launch.cuh"
#include "cuda/linear.h"

namespace dlk::cuda {
namespace {

constexpr int kCols = 32, kRowLanes = 8;
constexpr int64_t kMinChunkRows = 64, kMaxChunks = 64;

template <class T>
__global__ void __launch_bounds__(kCols* kRowLanes)
    column_sums_kernel(const T* dy, int64_t rs, int64_t cs, int64_t R, int64_t out, int64_t chunk_rows,
                       opmath_t<T>* partial, T* db) {
  using A = opmath_t<T>;
  __shared__ A lanes[kRowLanes][kCols];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kCols + tx;
  const int64_t first = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t last = first + chunk_rows < R ? first + chunk_rows : R;
  A acc = A(0);
  if (col < out) {
    for (int64_t r = first + ty; r < last; r += kRowLanes) acc += to_opmath(dy[r * rs + col * cs]);
  }
  lanes[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && col < out) {
    A s = lanes[0][tx];
#pragma unroll
    for (int y = 1; y < kRowLanes; ++y) s += lanes[y][tx];
    if (gridDim.y == 1) {
      db[col] = from_opmath<T>(s);
    } else {
      partial[blockIdx.y * out + col] = s;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    add_chunks_kernel(const opmath_t<T>* partial, int64_t chunks, int64_t out, T* db) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= out) return;
  opmath_t<T> s = partial[col];
  for (int64_t c = 1; c < chunks; ++c) s += partial[c * out + col];
  db[col] = from_opmath<T>(s);
}

template <class T>
cudaError_t run(const T* dy, int64_t rs, int64_t cs, int64_t R, int64_t out, T* db, opmath_t<T>* partial,
                cudaStream_t stream) {
  const int64_t chunks = column_sum_chunks(R);
  const int64_t chunk_rows = (R + chunks - 1) / chunks;
  const dim3 grid(static_cast<unsigned>((out + kCols - 1) / kCols), static_cast<unsigned>(chunks));
  cudaError_t err = launch(column_sums_kernel<T>, grid, dim3(kCols, kRowLanes), 0, stream, dy, rs, cs, R, out,
                           chunk_rows, partial, db);
  if (err != cudaSuccess || chunks == 1) return err;
  return launch(add_chunks_kernel<T>, static_cast<unsigned>((out + 255) / 256), 256, 0, stream, partial, chunks, out,
                db);
}

}  // namespace

int64_t column_sum_chunks(int64_t R) {
  int64_t rows = (R + kMaxChunks - 1) / kMaxChunks;
  rows = rows < kMinChunkRows ? kMinChunkRows : rows;
  return (R + rows - 1) / rows;
}

cudaError_t column_sums(DType dtype, const void* dy, int64_t rs, int64_t cs, int64_t R, int64_t out, void* db,
                        void* partial, cudaStream_t stream) {
  if (R <= 0 || out <= 0) return cudaErrorInvalidValue;
  switch (dtype) {
    case DType::f32:
      return run(static_cast<const float*>(dy), rs, cs, R, out, static_cast<float*>(db), static_cast<float*>(partial),
                 stream);
    case DType::f64:
      return run(static_cast<const double*>(dy), rs, cs, R, out, static_cast<double*>(db),
                 static_cast<double*>(partial), stream);
    case DType::f16:
      return run(static_cast<const __half*>(dy), rs, cs, R, out, static_cast<__half*>(db), static_cast<float*>(partial),
                 stream);
    case DType::bf16:
      return run(static_cast<const __nv_bfloat16*>(dy), rs, cs, R, out, static_cast<__nv_bfloat16*>(db),
                 static_cast<float*>(partial), stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace dlk::cuda
