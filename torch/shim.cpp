// Thin extern "C" layer over libtorch. Each function catches every C++
// exception and hands libtorch's message back as a string, so a bad shape or
// device mismatch becomes a Go error instead of an abort.
#include "shim.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/serialize.h>
#include <torch/version.h>
#include <torch/cuda.h>

#include <c10/core/CPUAllocator.h>

#include <dlfcn.h>
#include <malloc.h>
#include <sys/mman.h>
#include <omp.h>
#include <immintrin.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

char* dup_msg(const char* m) { return strdup(m ? m : "unknown libtorch error"); }

// Thread-local libtorch state that must follow the process-wide setting:
// Go runs cgo calls on whichever OS thread is free, and OpenMP's thread
// count is per calling thread.
std::atomic<int> g_threads{0};
// A calling thread may override the count for itself (torch.Concurrently
// gives each branch one share of the cores); 0 follows g_threads.
thread_local int tl_threads = 0;
inline void prelude() {
  int n = tl_threads > 0 ? tl_threads : g_threads.load(std::memory_order_relaxed);
  if (n > 0 && omp_get_max_threads() != n) omp_set_num_threads(n);
}

#define TRY(...)                                               \
  try {                                                        \
    prelude();                                                 \
    __VA_ARGS__;                                               \
    return nullptr;                                            \
  } catch (const c10::Error& e) {                              \
    return dup_msg(e.what_without_backtrace());                \
  } catch (const std::exception& e) {                          \
    return dup_msg(e.what());                                  \
  } catch (...) {                                              \
    return dup_msg("unknown C++ exception");                   \
  }

inline at::Tensor& T(tt t) { return *static_cast<at::Tensor*>(t); }
inline tt wrap(at::Tensor t) { return new at::Tensor(std::move(t)); }
inline c10::optional<at::Tensor> opt(tt t) {
  if (!t) return c10::nullopt;
  return T(t);
}
inline at::IntArrayRef ints(const int64_t* p, int n) { return at::IntArrayRef(p, (size_t)n); }

at::ScalarType scalar_type(int d) {
  switch (d) {
    case 0: return at::kFloat;
    case 1: return at::kDouble;
    case 2: return at::kHalf;
    case 3: return at::kBFloat16;
    case 4: return at::kLong;
    case 5: return at::kInt;
    case 6: return at::kByte;
    case 7: return at::kBool;
    case 8: return at::kChar;
    case 9: return at::kShort;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(d));
}

int dtype_code(at::ScalarType s) {
  switch (s) {
    case at::kFloat: return 0;
    case at::kDouble: return 1;
    case at::kHalf: return 2;
    case at::kBFloat16: return 3;
    case at::kLong: return 4;
    case at::kInt: return 5;
    case at::kByte: return 6;
    case at::kBool: return 7;
    case at::kChar: return 8;
    case at::kShort: return 9;
    default: return -1;
  }
}

at::Device device(int d) {
  if (d == -2) {
    ts_use_meta_fallback();
    return at::Device(at::kMeta);
  }
  if (d < 0) return at::Device(at::kCPU);
  return at::Device(at::kCUDA, (c10::DeviceIndex)d);
}

at::TensorOptions options(int dtype, int dev) {
  return at::TensorOptions().dtype(scalar_type(dtype)).device(device(dev));
}

at::Generator& G(tgen g) { return *static_cast<at::Generator*>(g); }

int64_t reduction(int r) {
  switch (r) {
    case 0: return at::Reduction::None;
    case 1: return at::Reduction::Mean;
    case 2: return at::Reduction::Sum;
  }
  throw std::invalid_argument("unknown reduction " + std::to_string(r));
}

std::vector<at::Tensor> tensors(tt* ts, int n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int i = 0; i < n; i++) v.push_back(T(ts[i]));
  return v;
}

}  // namespace

extern "C" {

const char* ts_version(void) { return TORCH_VERSION; }
int ts_cuda_available(void) { return torch::cuda::is_available() ? 1 : 0; }
int ts_cuda_device_count(void) { return (int)torch::cuda::device_count(); }

void ts_apply_threads(void) { prelude(); }

void ts_set_threads(int n) {
  g_threads.store(n);
  at::set_num_threads(n);
  // OpenBLAS keeps its own pool; left alone it fights torch's for the cores.
  typedef void (*setter)(int);
  if (auto f = (setter)dlsym(RTLD_DEFAULT, "openblas_set_num_threads")) f(n);
}
// ts_blas_core is OpenBLAS's kernel set ("" when libtorch uses another BLAS).
const char* ts_blas_core(void) {
  typedef char* (*name_fn)(void);
  auto corename = (name_fn)dlsym(RTLD_DEFAULT, "openblas_get_corename");
  return corename ? corename() : "";
}
int ts_get_threads(void) {
  int n = tl_threads > 0 ? tl_threads : g_threads.load();
  return n > 0 ? n : at::get_num_threads();
}
// Only the team size of later calls: each calling thread applies it in
// prelude(), so this is safe while another thread runs an op (OpenBLAS's
// OpenMP build follows omp_get_max_threads() of its caller by itself).
void ts_set_team_threads(int n) { if (n > 0) g_threads.store(n); }
void ts_set_local_threads(int n) {
  tl_threads = n > 0 ? n : 0;
  int k = tl_threads > 0 ? tl_threads : g_threads.load();
  if (k > 0) omp_set_num_threads(k);
}
int ts_tune_malloc(int64_t mmap_threshold, int64_t trim_threshold) {
  // glibc returns freed tensor buffers above the mmap threshold to the kernel,
  // so every step page-faults them in again; keeping them in the heap avoids that.
  return mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold) == 1 &&
         mallopt(M_TRIM_THRESHOLD, (int)trim_threshold) == 1;
}
namespace {
// Large CPU buffers on transparent huge pages. A fresh buffer is faulted in
// page by page, and on a VM a 4 KiB fault can cost microseconds: a
// full-size U-Net pass faulted in ~14 million pages and spent as much CPU
// time in the kernel as in its ops. Buffers from g_huge_min bytes up are
// mapped 2 MiB-aligned and advised MADV_HUGEPAGE, so one fault brings in
// 2 MiB; smaller ones go to the allocator libtorch had (glibc's heap).
// Where the kernel has no huge pages the advice is ignored: plain pages.
std::atomic<int64_t> g_huge_min{INT64_MAX};
constexpr size_t kHuge = 2u << 20, kPage = 4096;
std::mutex g_huge_mu;
std::unordered_map<void*, size_t> g_huge_len;  // live mapped block → its length
at::Allocator* g_fallback = nullptr;

// Freed mapped blocks are kept for reuse up to g_cache_max bytes: the
// tensors of a pass recur with the same sizes, and every fresh mapping is
// faulted in and zeroed by the kernel (clear_page was a quarter of the CPU
// samples of a full-size generate). The longest-kept go back first.
std::atomic<int64_t> g_cache_max{0};
struct Cached {
  void* p;
  size_t len;
  uint64_t seq;
};
std::vector<Cached> g_cache;  // under g_huge_mu
size_t g_cached = 0;          // bytes in g_cache
uint64_t g_seq = 0;

// evict_to unmaps the longest-kept blocks until at most max bytes stay
// (g_huge_mu held); it returns them for unmapping outside the lock.
std::vector<Cached> evict_to(size_t max) {
  std::vector<Cached> out;
  while (g_cached > max && !g_cache.empty()) {
    size_t oldest = 0;
    for (size_t i = 1; i < g_cache.size(); ++i)
      if (g_cache[i].seq < g_cache[oldest].seq) oldest = i;
    out.push_back(g_cache[oldest]);
    g_cached -= g_cache[oldest].len;
    g_cache[oldest] = g_cache.back();
    g_cache.pop_back();
  }
  return out;
}

// huge_delete frees a buffer of either kind; the context is the data
// pointer, as libtorch's raw_allocate requires.
void huge_delete(void* p) {
  if (!p) return;
  size_t len = 0;
  std::vector<Cached> drop;
  {
    std::lock_guard<std::mutex> lk(g_huge_mu);
    auto it = g_huge_len.find(p);
    if (it != g_huge_len.end()) {
      len = it->second;
      g_huge_len.erase(it);
      size_t max = (size_t)g_cache_max.load(std::memory_order_relaxed);
      if (len <= max) {
        g_cache.push_back({p, len, ++g_seq});
        g_cached += len;
        drop = evict_to(max);
        p = nullptr;
      }
    }
  }
  for (auto& c : drop) munmap(c.p, c.len);
  if (len) {
    if (p) munmap(p, len);
    return;
  }
  g_fallback->raw_deleter()(p);
}

// reuse takes a kept block of len bytes up to twice that (its whole length
// stays with it), or returns nullptr.
void* reuse(size_t len) {
  std::lock_guard<std::mutex> lk(g_huge_mu);
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < g_cache.size(); ++i)
    if (g_cache[i].len >= len && g_cache[i].len <= 2 * len && (best == SIZE_MAX || g_cache[i].len < g_cache[best].len)) best = i;
  if (best == SIZE_MAX) return nullptr;
  Cached c = g_cache[best];
  g_cached -= c.len;
  g_cache[best] = g_cache.back();
  g_cache.pop_back();
  g_huge_len[c.p] = c.len;
  return c.p;
}

// map_huge maps len bytes (a multiple of 4 KiB) at a 2 MiB boundary: the
// whole 2 MiB spans in it get huge pages, a last partial span plain ones.
void* map_huge(size_t len) {
  void* raw = mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  uintptr_t start = ((uintptr_t)raw + kHuge - 1) & ~(uintptr_t)(kHuge - 1);
  size_t head = start - (uintptr_t)raw, tail = kHuge - head;
  if (head) munmap(raw, head);
  if (tail) munmap((void*)(start + len), tail);
  madvise((void*)start, len, MADV_HUGEPAGE);
  std::lock_guard<std::mutex> lk(g_huge_mu);
  g_huge_len[(void*)start] = len;
  return (void*)start;
}

struct HugePageAllocator final : at::Allocator {
  at::DataPtr allocate(size_t n) const override {
    if (n == 0 || n < (size_t)g_huge_min.load(std::memory_order_relaxed)) return g_fallback->allocate(n);
    size_t len = (n + kPage - 1) / kPage * kPage;
    void* p = reuse(len);
    if (!p) p = map_huge(len);
    if (!p) return g_fallback->allocate(n);
    return {p, p, &huge_delete, at::Device(at::DeviceType::CPU)};
  }
  at::DeleterFnPtr raw_deleter() const override {
    return g_fallback->raw_deleter() ? &huge_delete : nullptr;
  }
};
}  // namespace

int ts_huge_pages(int64_t min_bytes) {
  static HugePageAllocator* a = [] {
    g_fallback = c10::GetCPUAllocator();
    auto* h = new HugePageAllocator();
    c10::SetCPUAllocator(h, /*priority=*/1);
    return h;
  }();
  g_huge_min.store(min_bytes > 0 ? min_bytes : INT64_MAX);
  return c10::GetCPUAllocator() == a ? 1 : 0;
}

int64_t ts_huge_cached(void) {
  std::lock_guard<std::mutex> lk(g_huge_mu);
  return (int64_t)g_cached;
}
void ts_huge_cache(int64_t max_bytes) {
  g_cache_max.store(max_bytes > 0 ? max_bytes : 0);
  std::vector<Cached> drop;
  {
    std::lock_guard<std::mutex> lk(g_huge_mu);
    drop = evict_to(max_bytes > 0 ? (size_t)max_bytes : 0);
  }
  for (auto& c : drop) munmap(c.p, c.len);
}

void ts_manual_seed(uint64_t seed) { at::manual_seed(seed); }
void ts_set_grad_enabled(int on) { at::GradMode::set_enabled(on != 0); }
int ts_is_grad_enabled(void) { return at::GradMode::is_enabled() ? 1 : 0; }

void ts_free(tt t) { delete static_cast<at::Tensor*>(t); }
int ts_dim(tt t) { return (int)T(t).dim(); }
void ts_shape(tt t, int64_t* out) {
  auto s = T(t).sizes();
  for (size_t i = 0; i < s.size(); i++) out[i] = s[i];
}
int ts_dtype(tt t) { return dtype_code(T(t).scalar_type()); }
int ts_device(tt t) {
  auto d = T(t).device();
  if (d.is_meta()) return -2;
  return d.is_cpu() ? -1 : (int)d.index();
}
int64_t ts_numel(tt t) { return T(t).numel(); }
int ts_requires_grad(tt t) { return T(t).requires_grad() ? 1 : 0; }
int ts_defined(tt t) { return T(t).defined() ? 1 : 0; }
terr ts_item(tt t, double* out) { TRY(*out = T(t).item<double>()) }

terr ts_zeros(const int64_t* s, int nd, int dt, int dev, tt* out) { TRY(*out = wrap(at::zeros(ints(s, nd), options(dt, dev)))) }
terr ts_ones(const int64_t* s, int nd, int dt, int dev, tt* out) { TRY(*out = wrap(at::ones(ints(s, nd), options(dt, dev)))) }
terr ts_full(const int64_t* s, int nd, double v, int dt, int dev, tt* out) { TRY(*out = wrap(at::full(ints(s, nd), v, options(dt, dev)))) }
terr ts_arange(double a, double b, double st, int dt, int dev, tt* out) { TRY(*out = wrap(at::arange(a, b, st, options(dt, dev)))) }
terr ts_linspace(double a, double b, int64_t n, int dt, int dev, tt* out) { TRY(*out = wrap(at::linspace(a, b, n, options(dt, dev)))) }
terr ts_eye(int64_t n, int dt, int dev, tt* out) { TRY(*out = wrap(at::eye(n, options(dt, dev)))) }

terr ts_from_data(const void* data, const int64_t* s, int nd, int dt, int dev, tt* out) {
  TRY({
    auto cpu = at::empty(ints(s, nd), options(dt, -1));
    std::memcpy(cpu.data_ptr(), data, cpu.nbytes());
    *out = wrap(dev == -1 ? cpu : cpu.to(device(dev)));
  })
}

terr ts_copy_to(tt t, void* dst, int64_t nbytes) {
  TRY({
    auto c = T(t).detach().to(at::kCPU).contiguous();
    if ((int64_t)c.nbytes() != nbytes)
      throw std::invalid_argument("copy_to: tensor has " + std::to_string(c.nbytes()) + " bytes, buffer " + std::to_string(nbytes));
    std::memcpy(dst, c.data_ptr(), nbytes);
  })
}

terr ts_write_bytes(tt t, int64_t offset, const void* src, int64_t nbytes) {
  TRY({
    auto& x = T(t);
    if (!x.device().is_cpu() || !x.is_contiguous())
      throw std::invalid_argument("write_bytes: tensor is not a contiguous CPU tensor");
    if (offset < 0 || nbytes < 0 || offset + nbytes > (int64_t)x.nbytes())
      throw std::invalid_argument("write_bytes: bytes [" + std::to_string(offset) + ", " + std::to_string(offset + nbytes) +
                                  ") outside the tensor's " + std::to_string(x.nbytes()));
    std::memcpy(static_cast<char*>(x.data_ptr()) + offset, src, nbytes);
  })
}

terr ts_generator_new(uint64_t seed, tgen* out) {
  TRY({
    auto g = new at::Generator(at::detail::createCPUGenerator(seed));
    *out = g;
  })
}
void ts_generator_free(tgen g) { delete static_cast<at::Generator*>(g); }
terr ts_generator_get_state(tgen g, tt* out) {
  TRY({
    std::lock_guard<std::mutex> lock(G(g).mutex());
    *out = wrap(G(g).get_state());
  })
}
terr ts_generator_set_state(tgen g, tt state) {
  TRY({
    std::lock_guard<std::mutex> lock(G(g).mutex());
    G(g).set_state(T(state));
  })
}

terr ts_randn(const int64_t* s, int nd, tgen g, int dt, tt* out) { TRY(*out = wrap(at::randn(ints(s, nd), G(g), options(dt, -1)))) }
terr ts_rand(const int64_t* s, int nd, tgen g, int dt, tt* out) { TRY(*out = wrap(at::rand(ints(s, nd), G(g), options(dt, -1)))) }
terr ts_randint(int64_t lo, int64_t hi, const int64_t* s, int nd, tgen g, tt* out) { TRY(*out = wrap(at::randint(lo, hi, ints(s, nd), G(g), at::TensorOptions().dtype(at::kLong)))) }
terr ts_randperm(int64_t n, tgen g, tt* out) { TRY(*out = wrap(at::randperm(n, G(g), at::TensorOptions().dtype(at::kLong)))) }
terr ts_bernoulli(tt p, tgen g, tt* out) { TRY(*out = wrap(at::bernoulli(T(p), G(g)))) }

terr ts_to(tt t, int dt, int dev, tt* out) { TRY(*out = wrap(T(t).to(device(dev), scalar_type(dt)))) }
terr ts_contiguous(tt t, tt* out) { TRY(*out = wrap(T(t).contiguous())) }
terr ts_clone(tt t, tt* out) { TRY(*out = wrap(T(t).clone())) }
terr ts_detach(tt t, tt* out) { TRY(*out = wrap(T(t).detach())) }
terr ts_set_requires_grad(tt t, int on) { TRY(T(t).set_requires_grad(on != 0)) }
terr ts_grad(tt t, tt* out) {
  TRY({
    auto g = T(t).grad();
    *out = g.defined() ? wrap(g) : nullptr;
  })
}
terr ts_zero_grad(tt t) { TRY(T(t).mutable_grad() = at::Tensor()) }

terr ts_binary(int op, tt a, tt b, tt* out) {
  TRY({
    auto& x = T(a);
    auto& y = T(b);
    at::Tensor r;
    switch (op) {
      case 0: r = x + y; break;
      case 1: r = x - y; break;
      case 2: r = x * y; break;
      case 3: r = x / y; break;
      case 4: r = at::pow(x, y); break;
      case 5: r = at::maximum(x, y); break;
      case 6: r = at::minimum(x, y); break;
      case 7: r = at::gt(x, y); break;
      case 8: r = at::lt(x, y); break;
      case 9: r = at::ge(x, y); break;
      case 10: r = at::le(x, y); break;
      case 11: r = at::eq(x, y); break;
      case 12: r = at::ne(x, y); break;
      case 13: r = at::logical_and(x, y); break;
      case 14: r = at::logical_or(x, y); break;
      case 15: r = at::atan2(x, y); break;
      default: throw std::invalid_argument("unknown binary op " + std::to_string(op));
    }
    *out = wrap(r);
  })
}

terr ts_binary_scalar(int op, tt a, double s, tt* out) {
  TRY({
    auto& x = T(a);
    at::Tensor r;
    switch (op) {
      case 0: r = x + s; break;
      case 1: r = x - s; break;
      case 2: r = x * s; break;
      case 3: r = x / s; break;
      case 4: r = at::pow(x, s); break;
      case 5: r = at::clamp_min(x, s); break;
      case 6: r = at::clamp_max(x, s); break;
      case 7: r = at::gt(x, s); break;
      case 8: r = at::lt(x, s); break;
      case 9: r = at::ge(x, s); break;
      case 10: r = at::le(x, s); break;
      case 11: r = at::eq(x, s); break;
      case 12: r = at::ne(x, s); break;
      case 13: r = s - x; break;
      case 14: r = s / x; break;
      case 15: r = at::pow(s, x); break;
      default: throw std::invalid_argument("unknown scalar op " + std::to_string(op));
    }
    *out = wrap(r);
  })
}

terr ts_unary(int op, tt a, tt* out) {
  TRY({
    auto& x = T(a);
    at::Tensor r;
    switch (op) {
      case 0: r = at::neg(x); break;
      case 1: r = at::exp(x); break;
      case 2: r = at::log(x); break;
      case 3: r = at::sqrt(x); break;
      case 4: r = at::rsqrt(x); break;
      case 5: r = at::abs(x); break;
      case 6: r = at::sin(x); break;
      case 7: r = at::cos(x); break;
      case 8: r = at::sigmoid(x); break;
      case 9: r = at::tanh(x); break;
      case 10: r = at::relu(x); break;
      case 11: r = at::silu(x); break;
      case 12: r = at::gelu(x); break;
      case 13: r = at::sign(x); break;
      case 14: r = at::floor(x); break;
      case 15: r = at::reciprocal(x); break;
      case 16: r = at::square(x); break;
      case 17: r = at::log1p(x); break;
      case 18: r = at::expm1(x); break;
      case 19: r = at::gelu(x, "tanh"); break;
      case 20: r = at::ceil(x); break;
      case 21: r = at::round(x); break;
      case 22: r = at::isnan(x); break;
      case 23: r = at::logical_not(x); break;
      case 24: r = at::erf(x); break;
      case 25: r = at::isfinite(x); break;
      default: throw std::invalid_argument("unknown unary op " + std::to_string(op));
    }
    *out = wrap(r);
  })
}

terr ts_leaky_relu(tt a, double slope, tt* out) { TRY(*out = wrap(at::leaky_relu(T(a), slope))) }
terr ts_softplus(tt a, double beta, double th, tt* out) { TRY(*out = wrap(at::softplus(T(a), beta, th))) }
terr ts_clamp(tt a, double lo, double hi, int hl, int hh, tt* out) {
  TRY({
    c10::optional<at::Scalar> l, h;
    if (hl) l = lo;
    if (hh) h = hi;
    *out = wrap(at::clamp(T(a), l, h));
  })
}
terr ts_where(tt c, tt a, tt b, tt* out) { TRY(*out = wrap(at::where(T(c), T(a), T(b)))) }
terr ts_masked_fill(tt a, tt m, double v, tt* out) { TRY(*out = wrap(T(a).masked_fill(T(m), v))) }
terr ts_lerp(tt a, tt b, tt w, tt* out) { TRY(*out = wrap(at::lerp(T(a), T(b), T(w)))) }

terr ts_inplace_binary(int op, tt a, tt b, double alpha) {
  TRY({
    switch (op) {
      case 0: T(a).add_(T(b), alpha); break;
      case 1: T(a).mul_(T(b)); break;
      case 2: T(a).div_(T(b)); break;
      case 3: T(a).lerp_(T(b), alpha); break;
      default: throw std::invalid_argument("unknown in-place op " + std::to_string(op));
    }
  })
}
terr ts_inplace_scalar(int op, tt a, double s) {
  TRY({
    switch (op) {
      case 0: T(a).add_(s); break;
      case 1: T(a).mul_(s); break;
      case 2: T(a).fill_(s); break;
      case 3: T(a).zero_(); break;
      case 4: T(a).clamp_min_(s); break;
      default: throw std::invalid_argument("unknown in-place scalar op " + std::to_string(op));
    }
  })
}
terr ts_addcmul_(tt a, tt b, tt c, double v) { TRY(T(a).addcmul_(T(b), T(c), v)) }
terr ts_addcdiv_(tt a, tt b, tt c, double v) { TRY(T(a).addcdiv_(T(b), T(c), v)) }
terr ts_copy_(tt d, tt s) { TRY(T(d).copy_(T(s))) }

terr ts_reduce(int op, tt a, const int64_t* dims, int nd, int keep, tt* out) {
  TRY({
    auto& x = T(a);
    auto d = ints(dims, nd);
    at::Tensor r;
    switch (op) {
      case 0: r = at::sum(x, d, keep != 0); break;
      case 1: r = at::mean(x, d, keep != 0); break;
      case 2: r = at::amax(x, d, keep != 0); break;
      case 3: r = at::amin(x, d, keep != 0); break;
      case 4:
        if (nd != 1) throw std::invalid_argument("prod takes exactly one dim");
        r = at::prod(x, dims[0], keep != 0);
        break;
      default: throw std::invalid_argument("unknown reduction op " + std::to_string(op));
    }
    *out = wrap(r);
  })
}
terr ts_reduce_all(int op, tt a, tt* out) {
  TRY({
    auto& x = T(a);
    at::Tensor r;
    switch (op) {
      case 0: r = x.sum(); break;
      case 1: r = x.mean(); break;
      case 2: r = x.max(); break;
      case 3: r = x.min(); break;
      default: throw std::invalid_argument("unknown reduction op " + std::to_string(op));
    }
    *out = wrap(r);
  })
}
terr ts_var(tt a, const int64_t* dims, int nd, int unb, int keep, tt* out) { TRY(*out = wrap(at::var(T(a), ints(dims, nd), unb != 0, keep != 0))) }
terr ts_max_dim(tt a, int64_t dim, int keep, tt* v, tt* i) {
  TRY({
    auto r = at::max(T(a), dim, keep != 0);
    *v = wrap(std::get<0>(r));
    *i = wrap(std::get<1>(r));
  })
}
terr ts_argmax(tt a, int64_t dim, int keep, tt* out) { TRY(*out = wrap(at::argmax(T(a), dim, keep != 0))) }
terr ts_softmax(tt a, int64_t dim, tt* out) { TRY(*out = wrap(at::softmax(T(a), dim))) }
// In place: libtorch's row kernel reads a row whole (its max) before it
// writes it, so the output may alias the input.
terr ts_softmax_(tt a, int64_t dim) { TRY(at::_softmax_out(T(a), T(a), dim, false)) }
terr ts_log_softmax(tt a, int64_t dim, tt* out) { TRY(*out = wrap(at::log_softmax(T(a), dim))) }
terr ts_logsumexp(tt a, int64_t dim, int keep, tt* out) { TRY(*out = wrap(at::logsumexp(T(a), dim, keep != 0))) }
terr ts_cumsum(tt a, int64_t dim, tt* out) { TRY(*out = wrap(at::cumsum(T(a), dim))) }
terr ts_cumprod(tt a, int64_t dim, tt* out) { TRY(*out = wrap(at::cumprod(T(a), dim))) }
terr ts_norm(tt a, double p, const int64_t* dims, int nd, int keep, tt* out) { TRY(*out = wrap(at::norm(T(a), p, ints(dims, nd), keep != 0))) }

terr ts_reshape(tt a, const int64_t* s, int nd, tt* out) { TRY(*out = wrap(T(a).reshape(ints(s, nd)))) }
terr ts_permute(tt a, const int64_t* d, int nd, tt* out) { TRY(*out = wrap(T(a).permute(ints(d, nd)))) }
terr ts_transpose(tt a, int64_t d0, int64_t d1, tt* out) { TRY(*out = wrap(T(a).transpose(d0, d1))) }
terr ts_expand(tt a, const int64_t* s, int nd, tt* out) { TRY(*out = wrap(T(a).expand(ints(s, nd)))) }
terr ts_repeat(tt a, const int64_t* r, int nd, tt* out) { TRY(*out = wrap(T(a).repeat(ints(r, nd)))) }
terr ts_squeeze(tt a, int64_t dim, tt* out) { TRY(*out = wrap(T(a).squeeze(dim))) }
terr ts_unsqueeze(tt a, int64_t dim, tt* out) { TRY(*out = wrap(T(a).unsqueeze(dim))) }
terr ts_flatten(tt a, int64_t s, int64_t e, tt* out) { TRY(*out = wrap(T(a).flatten(s, e))) }
terr ts_cat(tt* ts, int n, int64_t dim, tt* out) { TRY(*out = wrap(at::cat(tensors(ts, n), dim))) }
terr ts_stack(tt* ts, int n, int64_t dim, tt* out) { TRY(*out = wrap(at::stack(tensors(ts, n), dim))) }
terr ts_split(tt a, const int64_t* sizes, int n, int64_t dim, tt* outs) {
  TRY({
    auto parts = at::split_with_sizes(T(a), ints(sizes, n), dim);
    for (int i = 0; i < n; i++) outs[i] = wrap(parts[i]);
  })
}
terr ts_slice(tt a, int64_t dim, int64_t s, int64_t e, int64_t st, tt* out) { TRY(*out = wrap(T(a).slice(dim, s, e, st))) }
terr ts_index_select(tt a, int64_t dim, tt idx, tt* out) { TRY(*out = wrap(at::index_select(T(a), dim, T(idx)))) }
terr ts_gather(tt a, int64_t dim, tt idx, tt* out) { TRY(*out = wrap(at::gather(T(a), dim, T(idx)))) }
terr ts_scatter_add(tt a, int64_t dim, tt idx, tt src, tt* out) { TRY(*out = wrap(at::scatter_add(T(a), dim, T(idx), T(src)))) }
terr ts_flip(tt a, const int64_t* d, int nd, tt* out) { TRY(*out = wrap(at::flip(T(a), ints(d, nd)))) }
terr ts_pad(tt a, const int64_t* p, int np, int mode, double v, tt* out) {
  TRY({
    at::Tensor r;
    auto pads = ints(p, np);
    switch (mode) {
      case 0: r = at::constant_pad_nd(T(a), pads, v); break;
      case 1: r = at::reflection_pad2d(T(a), pads); break;
      case 2: r = at::replication_pad2d(T(a), pads); break;
      default: throw std::invalid_argument("unknown pad mode " + std::to_string(mode));
    }
    *out = wrap(r);
  })
}
terr ts_one_hot(tt idx, int64_t c, tt* out) {
  TRY({
    if (T(idx).is_meta()) {  // libtorch 1.13 refuses meta even with c given
      auto s = T(idx).sizes().vec();
      s.push_back(c);
      *out = wrap(at::empty(s, T(idx).options().dtype(at::kLong)));
    } else {
      *out = wrap(at::one_hot(T(idx), c));
    }
  })
}
terr ts_embedding(tt w, tt idx, tt* out) { TRY(*out = wrap(at::embedding(T(w), T(idx)))) }
terr ts_searchsorted(tt s, tt v, int right, tt* out) { TRY(*out = wrap(at::searchsorted(T(s), T(v), false, right != 0))) }
terr ts_tril(tt a, int64_t d, tt* out) { TRY(*out = wrap(at::tril(T(a), d))) }

namespace {
// sgemm is C[m,n] = A[m,k]·B (B [k,n], or [n,k] read transposed) + beta·C,
// each matrix row-major with its own row stride, on OpenBLAS's cblas_sgemm
// (found at run time in the BLAS libtorch links; inside a parallel region
// OpenBLAS runs it on the calling thread alone). oneDNN's dnnl_sgemm, 1.6–2×
// faster here, crashed under concurrent load (session 25): not used.
typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
cblas_sgemm_fn cblas_sgemm_ptr() {
  static const cblas_sgemm_fn f = [] {
    const char* e = getenv("DDGI_GEMM");
    if (e && std::string(e) == "blas") return (cblas_sgemm_fn) nullptr;
    return (cblas_sgemm_fn)dlsym(RTLD_DEFAULT, "cblas_sgemm");
  }();
  return f;
}
void sgemm(bool transb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
           float beta, float* c, int64_t ldc) {
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX)
    throw std::invalid_argument("sgemm: a dimension over 2^31");
  cblas_sgemm_ptr()(101 /* row-major */, 111 /* A as is */, transb ? 112 : 111, (int)m, (int)n, (int)k, 1.f, a, (int)lda, b,
                    (int)ldb, beta, c, (int)ldc);
}
// Whether an op on these tensors may bypass autograd and libtorch's
// kernels: fp32, CPU, contiguous, and nothing recorded.
bool plain_fp32(std::initializer_list<const at::Tensor*> ts) {
  bool grad = at::GradMode::is_enabled();
  for (auto t : ts) {
    if (!t->defined()) continue;
    if (t->scalar_type() != at::kFloat || !t->device().is_cpu() || !t->is_contiguous() || (grad && t->requires_grad()) ||
        t->is_mkldnn() || t->is_sparse())
      return false;
  }
  return true;
}
// fused_attention is softmax(q·kᵀ)·v for every head of q [B,N,H·d] (the
// 1/√d scale already applied), k and v [B,M,H·d], returned as [B,N,H·d]:
// the heads are read in place (row stride H·d) and the map is made a tile
// of rows at a time, each tile softmaxed and multiplied while it is in
// cache, so the [B,H,N,M] map is never made whole (537 MB a sample for a
// 64² SD1.5 layer); the tiles run side by side on the intra-op threads.
// With probs set, the tiles are the rows of *probs [B,H,N,M] instead, and
// the result is the same bit for bit.
at::Tensor fused_attention(const at::Tensor& q0, const at::Tensor& k0, const at::Tensor& v0, int64_t heads, at::Tensor* probs) {
  TORCH_CHECK(q0.dim() == 3 && k0.dim() == 3 && v0.dim() == 3, "attention: q, k, v must be [B,L,H·d]");
  TORCH_CHECK(heads > 0 && q0.size(2) % heads == 0, "attention: width ", q0.size(2), " not divisible by ", heads, " heads");
  TORCH_CHECK(k0.sizes() == v0.sizes() && k0.size(0) == q0.size(0) && k0.size(2) == q0.size(2),
              "attention: q ", q0.sizes(), ", k ", k0.sizes(), ", v ", v0.sizes(), " do not fit");
  auto q = q0.contiguous(), k = k0.contiguous(), v = v0.contiguous();
  TORCH_CHECK(plain_fp32({&q, &k, &v}), "attention: fp32 CPU tensors without autograd only");
  TORCH_CHECK(cblas_sgemm_ptr(), "attention: no cblas_sgemm found");
  int64_t B = q.size(0), N = q.size(1), M = k.size(1), W = q.size(2), d = W / heads;
  TORCH_CHECK(M > 0 || N == 0, "attention: no keys");
  auto out = at::empty({B, N, W}, q.options());
  float* pp = nullptr;
  if (probs) {
    *probs = at::empty({B, heads, N, M}, q.options());
    pp = probs->data_ptr<float>();
  }
  if (B == 0 || N == 0) return out;
  // A tile of rows×M scores of about 512 KB stays in a core's L2.
  int64_t rows = std::max<int64_t>(1, std::min<int64_t>(N, (int64_t(1) << 17) / M));
  int64_t tiles = (N + rows - 1) / rows, items = B * heads * tiles;
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, items, 1, [&](int64_t lo, int64_t hi) {
    at::Tensor s;
    if (!pp) s = at::empty({rows, M}, q.options());
    for (int64_t it = lo; it < hi; ++it) {
      int64_t bh = it / tiles, r0 = (it % tiles) * rows, b = bh / heads, h = bh % heads;
      int64_t nr = std::min(rows, N - r0);
      float* sp = pp ? pp + (bh * N + r0) * M : s.data_ptr<float>();
      at::Tensor st = at::from_blob(sp, {nr, M}, q.options());
      sgemm(true, nr, M, d, qp + (b * N + r0) * W + h * d, W, kp + b * M * W + h * d, W, 0.f, sp, M);
      at::_softmax_out(st, st, 1, false);
      sgemm(false, nr, d, M, sp, M, vp + b * M * W + h * d, W, 0.f, op + (b * N + r0) * W + h * d, W);
    }
  });
  return out;
}
extern "C++" {  // templates inside the shim's extern "C" block
// dot_tile is y[r][c] = Σ_k x[r][k]·w[c][k] (+ b[c]) for R rows of x and C
// rows of w, each product a dot product of two contiguous rows: 16 lanes of
// k at a time in AVX-512 registers, R·C sums reduced at the end. No
// packing: y = x·wᵀ reads both operands along k as they lie.
template <int R, int C>
__attribute__((target("avx512f"))) void dot_tile(int64_t K, const float* x, int64_t ldx, const float* w, int64_t ldw,
                                                 const float* b, float* y, int64_t ldy) {
  __m512 acc[R][C];
  _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r)
    _Pragma("GCC unroll 8") for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[C];
    _Pragma("GCC unroll 8") for (int c = 0; c < C; ++c) wv[c] = _mm512_loadu_ps(w + c * ldw + k);
    _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r) {
      __m512 xv = _mm512_loadu_ps(x + r * ldx + k);
      _Pragma("GCC unroll 8") for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  if (k < K) {  // the last K mod 16 lanes, the rest masked to zero
    __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
    __m512 wv[C];
    _Pragma("GCC unroll 8") for (int c = 0; c < C; ++c) wv[c] = _mm512_maskz_loadu_ps(m, w + c * ldw + k);
    _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r) {
      __m512 xv = _mm512_maskz_loadu_ps(m, x + r * ldx + k);
      _Pragma("GCC unroll 8") for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r)
    _Pragma("GCC unroll 8") for (int c = 0; c < C; ++c) y[r * ldy + c] = _mm512_reduce_add_ps(acc[r][c]) + (b ? b[c] : 0.f);
}
// A 4×6 tile holds 24 sums, 6 rows of w and one of x in 31 of the 32
// registers (3×8 spills; 4×4 and 6×4 measured 3–20% slower on CLIP's shapes).
constexpr int tile_rows = 4, tile_cols = 6;
typedef void (*dot_tile_fn)(int64_t, const float*, int64_t, const float*, int64_t, const float*, float*, int64_t);
template <int R, int C>
dot_tile_fn pick_cols(int c) {
  if constexpr (C == 0) return nullptr;
  else return c == C ? dot_tile<R, C> : pick_cols<R, C - 1>(c);
}
template <int R, int C>
dot_tile_fn pick_tile(int r, int c) {
  if constexpr (R == 0) return nullptr;
  else return r == R ? pick_cols<R, C>(c) : pick_tile<R - 1, C>(r, c);
}
// dot_block is rows [m0,m1) × columns [n0,n1) of y = x·wᵀ + b, x [M,K] and
// w [N,K] row-major: blocks of 64 rows of x (≤ 768 KB at K = 3072, in a
// core's L2) against every tile of w's rows in turn.
void dot_block(int64_t K, const float* x, const float* w, const float* b, float* y, int64_t N, int64_t m0, int64_t m1,
               int64_t n0, int64_t n1) {
  for (int64_t mb = m0; mb < m1; mb += 64) {
    int64_t me = std::min(m1, mb + 64);
    for (int64_t n = n0; n < n1; n += tile_cols) {
      int nn = (int)std::min<int64_t>(tile_cols, n1 - n);
      for (int64_t m = mb; m < me; m += tile_rows) {
        int mm = (int)std::min<int64_t>(tile_rows, me - m);
        pick_tile<tile_rows, tile_cols>(mm, nn)(K, x + m * K, K, w + n * K, K, b ? b + n : nullptr, y + m * N + n, N);
      }
    }
  }
}
}  // extern "C++"
// The linear kernels, as DDGI_GEMM chooses: "blas" leaves every product to
// libtorch; "cblas" splits few-row products over OpenBLAS calls; by default
// dot_tile serves every product where the CPU has AVX-512.
enum linear_kernel { linear_libtorch, linear_cblas, linear_dot };
bool has_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}
std::atomic<int> linear_choice{[] {
  const char* e = getenv("DDGI_GEMM");
  std::string v = e ? e : "";
  return v == "blas" ? linear_libtorch : v == "cblas" || !has_avx512() ? linear_cblas : linear_dot;
}()};
std::atomic<int64_t> linear_calls[3];
// fast_linear is x·wᵀ + b for inference (fp32 CPU operands, nothing
// recorded), split over the intra-op threads by blocks of output columns
// (and of rows where there are many): on dot_tile, or, without AVX-512,
// for ≤ 1024 rows, on single-threaded cblas_sgemm calls, one a block
// (OpenBLAS's own 2-thread split of such shapes is 1.2–1.4× slower: it
// splits the few rows, and each thread packs all of w). Measured on 2
// cores with the Haswell kernels this VM's OPENBLAS_CORETYPE selects,
// against OpenBLAS's 2-thread sgemm: 77×768×768 0.77 → 0.36 ms, 154×3072×768
// 4.6 → 2.6 ms, 1024×5120×640 35 → 24 ms, 4096×320×320 4.8 → 3.8 ms.
// Returns an undefined tensor where it does not serve, for at::linear.
at::Tensor fast_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  int choice = linear_choice.load(std::memory_order_relaxed);
  bool dot = choice == linear_dot;
  if (choice == linear_libtorch || (!dot && !cblas_sgemm_ptr())) return at::Tensor();
  if (x.dim() < 1 || w.dim() != 2 || !plain_fp32({&x, &w, &b}) || x.size(-1) != w.size(1) ||
      (b.defined() && (b.dim() != 1 || b.size(0) != w.size(0))))
    return at::Tensor();
  int64_t K = w.size(1), N = w.size(0), M = K ? x.numel() / K : 0;
  int threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  if (M == 0 || K == 0 || N == 0 || (!dot && (threads < 2 || M > 1024 || N < 64))) return at::Tensor();
  auto shape = x.sizes().vec();
  shape.back() = N;
  auto out = at::empty(shape, x.options());
  const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  linear_calls[dot ? linear_dot : linear_cblas].fetch_add(1, std::memory_order_relaxed);
  // Two blocks a thread so an uneven one evens out: of columns, in whole
  // tiles (or 64-byte lines), and of rows where columns run short.
  int64_t want = 2 * threads, step = dot ? tile_cols : 16;
  int64_t cparts = std::max<int64_t>(1, std::min<int64_t>(want, N / step));
  int64_t width = (N / cparts + step - 1) / step * step;
  cparts = (N + width - 1) / width;
  int64_t rparts = dot ? std::max<int64_t>(1, std::min<int64_t>((want + cparts - 1) / cparts, M / 64)) : 1;
  int64_t height = (M + rparts - 1) / rparts, items = cparts * rparts;
  // Products under ~128K multiply-adds run on the calling thread: waking
  // the team costs more than they take.
  int64_t grain = M * N * K < (int64_t(1) << 17) ? items : 1;
  at::parallel_for(0, items, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      int64_t n0 = (p % cparts) * width, n1 = std::min(N, n0 + width);
      int64_t m0 = (p / cparts) * height, m1 = std::min(M, m0 + height);
      if (dot) {
        dot_block(K, xp, wp, bp, op, N, m0, m1, n0, n1);
        continue;
      }
      if (bp)
        for (int64_t i = 0; i < M; ++i) std::copy(bp + n0, bp + n1, op + i * N + n0);
      sgemm(true, M, n1 - n0, K, xp, K, wp + n0 * K, K, bp ? 1.f : 0.f, op + n0, N);
    }
  });
  return out;
}
}  // namespace

terr ts_matmul(tt a, tt b, tt* out) { TRY(*out = wrap(at::matmul(T(a), T(b)))) }
terr ts_bmm(tt a, tt b, tt* out) { TRY(*out = wrap(at::bmm(T(a), T(b)))) }
terr ts_linear(tt x, tt w, tt b, tt* out) {
  TRY({
    at::Tensor o = fast_linear(T(x), T(w), b ? T(b) : at::Tensor());
    *out = wrap(o.defined() ? o : at::linear(T(x), T(w), opt(b)));
  })
}
terr ts_einsum(const char* eq, tt* ts, int n, tt* out) { TRY(*out = wrap(at::einsum(eq, tensors(ts, n)))) }
terr ts_attention(tt q, tt k, tt v, int64_t heads, tt* out, tt* probs) {
  TRY({
    at::Tensor p;
    at::Tensor o = fused_attention(T(q), T(k), T(v), heads, probs ? &p : nullptr);
    *out = wrap(o);
    if (probs) *probs = wrap(p);
  })
}
int ts_attention_ready(void) { return cblas_sgemm_ptr() != nullptr; }
int64_t ts_linear_calls(int kernel) { return kernel >= 0 && kernel < 3 ? linear_calls[kernel].load() : -1; }
int ts_linear_kernel(int kernel) {
  if (kernel == linear_dot && !has_avx512()) kernel = linear_cblas;
  return kernel >= 0 && kernel < 3 ? linear_choice.exchange(kernel) : linear_choice.load();
}

// Shape-only kernels for the meta device where libtorch 1.13 routes
// convolutions to a backend hook no fallback can serve (see meta.cpp for
// the other ops): they check that every operand is on meta
// (as the CPU and CUDA kernels check devices) and return an empty result of
// the right shape. Tests run whole pipelines on meta to prove that no
// tensor is created on the wrong device.
static bool any_meta(std::initializer_list<const at::Tensor*> ts) {
  bool meta = false;
  for (auto t : ts) meta = meta || (t->defined() && t->is_meta());
  if (!meta) return false;
  for (auto t : ts)
    if (t->defined() && !t->is_meta())
      throw std::invalid_argument(std::string("Expected all tensors to be on the same device, but found at least two devices, meta and ") + t->device().str() + "!");
  return true;
}
static int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

terr ts_conv2d(tt x, tt w, tt b, const int64_t* st, const int64_t* p, const int64_t* d, int64_t g, tt* out) {
  TRY({
    at::Tensor bias = b ? T(b) : at::Tensor();
    if (any_meta({&T(x), &T(w), &bias})) {
      auto xs = T(x).sizes(), ws = T(w).sizes();
      if (xs.size() != 4 || ws.size() != 4 || xs[1] != ws[1] * g) throw std::invalid_argument("conv2d (meta): input " + c10::str(xs) + " and weight " + c10::str(ws) + " do not match");
      *out = wrap(at::empty({xs[0], ws[0], conv_out(xs[2], ws[2], st[0], p[0], d[0]), conv_out(xs[3], ws[3], st[1], p[1], d[1])}, T(x).options()));
    } else {
      *out = wrap(at::conv2d(T(x), T(w), opt(b), ints(st, 2), ints(p, 2), ints(d, 2), g));
    }
  })
}
terr ts_conv_transpose2d(tt x, tt w, tt b, const int64_t* st, const int64_t* p, const int64_t* op, int64_t g, const int64_t* d, tt* out) {
  TRY({
    at::Tensor bias = b ? T(b) : at::Tensor();
    if (any_meta({&T(x), &T(w), &bias})) {
      auto xs = T(x).sizes(), ws = T(w).sizes();
      if (xs.size() != 4 || ws.size() != 4 || xs[1] != ws[0]) throw std::invalid_argument("conv_transpose2d (meta): input " + c10::str(xs) + " and weight " + c10::str(ws) + " do not match");
      auto o = [&](int i) { return (xs[2 + i] - 1) * st[i] - 2 * p[i] + d[i] * (ws[2 + i] - 1) + op[i] + 1; };
      *out = wrap(at::empty({xs[0], ws[1] * g, o(0), o(1)}, T(x).options()));
    } else {
      *out = wrap(at::conv_transpose2d(T(x), T(w), opt(b), ints(st, 2), ints(p, 2), ints(op, 2), g, ints(d, 2)));
    }
  })
}
terr ts_group_norm(tt x, int64_t g, tt w, tt b, double eps, tt* out) { TRY(*out = wrap(at::group_norm(T(x), g, opt(w), opt(b), eps))) }
terr ts_layer_norm(tt x, const int64_t* s, int nd, tt w, tt b, double eps, tt* out) { TRY(*out = wrap(at::layer_norm(T(x), ints(s, nd), opt(w), opt(b), eps))) }
terr ts_interpolate(tt x, int64_t oh, int64_t ow, int mode, int ac, tt* out) {
  TRY({
    std::vector<int64_t> sz{oh, ow};
    at::Tensor r;
    switch (mode) {
      case 0: r = at::upsample_nearest2d(T(x), sz); break;
      case 1: r = at::upsample_bilinear2d(T(x), sz, ac != 0); break;
      case 2: r = at::upsample_bicubic2d(T(x), sz, ac != 0); break;
      case 3: r = at::adaptive_avg_pool2d(T(x), sz); break;
      default: throw std::invalid_argument("unknown interpolation mode " + std::to_string(mode));
    }
    *out = wrap(r);
  })
}
terr ts_avg_pool2d(tt x, const int64_t* k, const int64_t* s, const int64_t* p, tt* out) { TRY(*out = wrap(at::avg_pool2d(T(x), ints(k, 2), ints(s, 2), ints(p, 2)))) }
terr ts_max_pool2d(tt x, const int64_t* k, const int64_t* s, const int64_t* p, tt* out) { TRY(*out = wrap(at::max_pool2d(T(x), ints(k, 2), ints(s, 2), ints(p, 2)))) }
terr ts_adaptive_avg_pool2d(tt x, int64_t oh, int64_t ow, tt* out) { TRY(*out = wrap(at::adaptive_avg_pool2d(T(x), {oh, ow}))) }
terr ts_grid_sample(tt x, tt g, int mode, int pad, int ac, tt* out) { TRY(*out = wrap(at::grid_sampler(T(x), T(g), mode, pad, ac != 0))) }
terr ts_dropout(tt x, double p, int train, tt* out) { TRY(*out = wrap(at::dropout(T(x), p, train != 0))) }

terr ts_mse_loss(tt a, tt b, int red, tt* out) { TRY(*out = wrap(at::mse_loss(T(a), T(b), reduction(red)))) }
terr ts_l1_loss(tt a, tt b, int red, tt* out) { TRY(*out = wrap(at::l1_loss(T(a), T(b), reduction(red)))) }
terr ts_cross_entropy(tt l, tt t, tt w, int64_t ig, double sm, int red, tt* out) {
  TRY(*out = wrap(at::cross_entropy_loss(T(l), T(t), opt(w), reduction(red), ig, sm)))
}
terr ts_bce_logits(tt x, tt y, int red, tt* out) { TRY(*out = wrap(at::binary_cross_entropy_with_logits(T(x), T(y), c10::nullopt, c10::nullopt, reduction(red)))) }

terr ts_backward(tt t, tt g, int retain) {
  TRY({
    T(t).backward(g ? T(g) : at::Tensor(), retain != 0);
  })
}

terr ts_autograd_grad(tt* outs, int no, tt* ins, int ni, tt* gouts, int create, int retain, int allow_unused, tt* res) {
  TRY({
    std::vector<at::Tensor> go;
    if (gouts) {
      for (int i = 0; i < no; i++) go.push_back(gouts[i] ? T(gouts[i]) : at::Tensor());
    }
    auto r = torch::autograd::grad(tensors(outs, no), tensors(ins, ni), go, retain != 0 || create != 0, create != 0, allow_unused != 0);
    for (int i = 0; i < ni; i++) res[i] = r[i].defined() ? wrap(r[i]) : nullptr;
  })
}

terr ts_load_pt(const char* path, int* n, char*** names, tt** ts) {
  TRY({
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error(std::string("cannot open ") + path);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto iv = torch::pickle_load(bytes);
    if (!iv.isGenericDict()) throw std::runtime_error("not a dict of tensors (a state_dict)");
    auto d = iv.toGenericDict();
    std::vector<std::pair<std::string, at::Tensor>> kv;
    for (const auto& e : d) {
      if (!e.key().isString()) throw std::runtime_error("state_dict key is not a string");
      if (!e.value().isTensor()) throw std::runtime_error("state_dict entry " + e.key().toStringRef() + " is not a tensor");
      kv.emplace_back(e.key().toStringRef(), e.value().toTensor());
    }
    *n = (int)kv.size();
    *names = (char**)malloc(sizeof(char*) * (kv.size() + 1));
    *ts = (tt*)malloc(sizeof(tt) * (kv.size() + 1));
    for (size_t i = 0; i < kv.size(); i++) {
      (*names)[i] = strdup(kv[i].first.c_str());
      (*ts)[i] = wrap(kv[i].second);
    }
  })
}

}  // extern "C"
