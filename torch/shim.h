// C ABI over libtorch: one function per op, no logic. Every function that can
// fail returns a malloc'd error string (NULL on success) that the caller frees.
#ifndef DDGI_TORCH_SHIM_H
#define DDGI_TORCH_SHIM_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void* tt;   // owned at::Tensor*
typedef void* tgen; // owned at::Generator*
typedef char* terr; // NULL or malloc'd message

// Library and runtime.
const char* ts_version(void);
int ts_cuda_available(void);
int ts_cuda_device_count(void);
void ts_set_threads(int n);
void ts_set_team_threads(int n);
int ts_get_threads(void);
void ts_set_local_threads(int n);
// Applies the thread count to the calling thread, as every shim call does
// first (for the shim's other translation units).
void ts_apply_threads(void);
int ts_tune_malloc(int64_t mmap_threshold, int64_t trim_threshold);
const char* ts_blas_core(void);
int ts_huge_pages(int64_t min_bytes);
void ts_huge_cache(int64_t max_bytes);
int64_t ts_huge_cached(void);
void ts_manual_seed(uint64_t seed);
void ts_set_grad_enabled(int on);
int ts_is_grad_enabled(void);

// Lifetime and properties.
void ts_free(tt t);
int ts_dim(tt t);
void ts_shape(tt t, int64_t* out);
int ts_dtype(tt t);
// Makes every op without a meta kernel run on zeros on the CPU (meta.cpp).
void ts_use_meta_fallback(void);
int ts_device(tt t); // -1 cpu, -2 meta, >=0 cuda index
int64_t ts_numel(tt t);
int ts_requires_grad(tt t);
int ts_defined(tt t);
terr ts_item(tt t, double* out);

// Creation. dtype codes match the Go DType constants.
terr ts_zeros(const int64_t* shape, int nd, int dtype, int dev, tt* out);
terr ts_ones(const int64_t* shape, int nd, int dtype, int dev, tt* out);
terr ts_full(const int64_t* shape, int nd, double v, int dtype, int dev, tt* out);
terr ts_arange(double start, double end, double step, int dtype, int dev, tt* out);
terr ts_linspace(double start, double end, int64_t n, int dtype, int dev, tt* out);
terr ts_eye(int64_t n, int dtype, int dev, tt* out);
terr ts_from_data(const void* data, const int64_t* shape, int nd, int dtype, int dev, tt* out);
terr ts_copy_to(tt t, void* dst, int64_t nbytes);
// Copies nbytes from src into a contiguous CPU tensor's storage at offset.
terr ts_write_bytes(tt t, int64_t offset, const void* src, int64_t nbytes);
terr ts_generator_new(uint64_t seed, tgen* out);
void ts_generator_free(tgen g);
terr ts_generator_get_state(tgen g, tt* out);
terr ts_generator_set_state(tgen g, tt state);
terr ts_randn(const int64_t* shape, int nd, tgen g, int dtype, tt* out);
terr ts_rand(const int64_t* shape, int nd, tgen g, int dtype, tt* out);
terr ts_randint(int64_t low, int64_t high, const int64_t* shape, int nd, tgen g, tt* out);
terr ts_randperm(int64_t n, tgen g, tt* out);
terr ts_bernoulli(tt p, tgen g, tt* out);

// Conversion.
terr ts_to(tt t, int dtype, int dev, tt* out);
terr ts_contiguous(tt t, tt* out);
terr ts_clone(tt t, tt* out);
terr ts_detach(tt t, tt* out);
terr ts_set_requires_grad(tt t, int on);
terr ts_grad(tt t, tt* out); // *out NULL when undefined
terr ts_zero_grad(tt t);

// Elementwise.
terr ts_binary(int op, tt a, tt b, tt* out);
terr ts_binary_scalar(int op, tt a, double s, tt* out);
terr ts_unary(int op, tt a, tt* out);
terr ts_leaky_relu(tt a, double slope, tt* out);
terr ts_softplus(tt a, double beta, double threshold, tt* out);
terr ts_clamp(tt a, double lo, double hi, int has_lo, int has_hi, tt* out);
terr ts_where(tt cond, tt a, tt b, tt* out);
terr ts_masked_fill(tt a, tt mask, double v, tt* out);
terr ts_lerp(tt a, tt b, tt w, tt* out);

// In place (optimizers, EMA); never recorded by autograd callers.
terr ts_inplace_binary(int op, tt a, tt b, double alpha);
terr ts_inplace_scalar(int op, tt a, double s);
terr ts_addcmul_(tt a, tt b, tt c, double v);
terr ts_addcdiv_(tt a, tt b, tt c, double v);
terr ts_copy_(tt dst, tt src);

// Reductions.
terr ts_reduce(int op, tt a, const int64_t* dims, int nd, int keepdim, tt* out);
terr ts_reduce_all(int op, tt a, tt* out);
terr ts_var(tt a, const int64_t* dims, int nd, int unbiased, int keepdim, tt* out);
terr ts_max_dim(tt a, int64_t dim, int keepdim, tt* vals, tt* idx);
terr ts_argmax(tt a, int64_t dim, int keepdim, tt* out);
terr ts_softmax(tt a, int64_t dim, tt* out);
terr ts_softmax_(tt a, int64_t dim);
terr ts_log_softmax(tt a, int64_t dim, tt* out);
terr ts_logsumexp(tt a, int64_t dim, int keepdim, tt* out);
terr ts_cumsum(tt a, int64_t dim, tt* out);
terr ts_cumprod(tt a, int64_t dim, tt* out);
terr ts_norm(tt a, double p, const int64_t* dims, int nd, int keepdim, tt* out);

// Shape.
terr ts_reshape(tt a, const int64_t* shape, int nd, tt* out);
terr ts_permute(tt a, const int64_t* dims, int nd, tt* out);
terr ts_transpose(tt a, int64_t d0, int64_t d1, tt* out);
terr ts_expand(tt a, const int64_t* shape, int nd, tt* out);
terr ts_repeat(tt a, const int64_t* reps, int nd, tt* out);
terr ts_squeeze(tt a, int64_t dim, tt* out);
terr ts_unsqueeze(tt a, int64_t dim, tt* out);
terr ts_flatten(tt a, int64_t start, int64_t end, tt* out);
terr ts_cat(tt* ts, int n, int64_t dim, tt* out);
terr ts_stack(tt* ts, int n, int64_t dim, tt* out);
terr ts_split(tt a, const int64_t* sizes, int n, int64_t dim, tt* outs);
terr ts_slice(tt a, int64_t dim, int64_t start, int64_t end, int64_t step, tt* out);
terr ts_index_select(tt a, int64_t dim, tt idx, tt* out);
terr ts_gather(tt a, int64_t dim, tt idx, tt* out);
terr ts_scatter_add(tt a, int64_t dim, tt idx, tt src, tt* out);
terr ts_flip(tt a, const int64_t* dims, int nd, tt* out);
terr ts_pad(tt a, const int64_t* pad, int np, int mode, double v, tt* out);
terr ts_one_hot(tt idx, int64_t classes, tt* out);
terr ts_embedding(tt weight, tt idx, tt* out);
terr ts_searchsorted(tt sorted, tt values, int right, tt* out);
terr ts_tril(tt a, int64_t diag, tt* out);

// Linear algebra.
terr ts_matmul(tt a, tt b, tt* out);
terr ts_bmm(tt a, tt b, tt* out);
terr ts_linear(tt x, tt w, tt b, tt* out);
terr ts_attention(tt q, tt k, tt v, int64_t heads, tt* out, tt* probs);
int ts_attention_ready(void);
int64_t ts_linear_calls(int kernel);
int ts_linear_kernel(int kernel);
terr ts_einsum(const char* eq, tt* ts, int n, tt* out);

// Convolution, normalisation, resampling, pooling.
terr ts_conv2d(tt x, tt w, tt b, const int64_t* stride, const int64_t* pad, const int64_t* dil, int64_t groups, tt* out);
terr ts_conv_transpose2d(tt x, tt w, tt b, const int64_t* stride, const int64_t* pad, const int64_t* outpad, int64_t groups, const int64_t* dil, tt* out);
terr ts_group_norm(tt x, int64_t groups, tt w, tt b, double eps, tt* out);
terr ts_layer_norm(tt x, const int64_t* shape, int nd, tt w, tt b, double eps, tt* out);
terr ts_interpolate(tt x, int64_t oh, int64_t ow, int mode, int align_corners, tt* out);
terr ts_avg_pool2d(tt x, const int64_t* k, const int64_t* s, const int64_t* p, tt* out);
terr ts_max_pool2d(tt x, const int64_t* k, const int64_t* s, const int64_t* p, tt* out);
terr ts_adaptive_avg_pool2d(tt x, int64_t oh, int64_t ow, tt* out);
terr ts_grid_sample(tt x, tt grid, int mode, int padding, int align_corners, tt* out);
terr ts_dropout(tt x, double p, int train, tt* out);

// Losses (reduction: 0 none, 1 mean, 2 sum).
terr ts_mse_loss(tt a, tt b, int red, tt* out);
terr ts_l1_loss(tt a, tt b, int red, tt* out);
terr ts_cross_entropy(tt logits, tt target, tt weight, int64_t ignore, double smoothing, int red, tt* out);
terr ts_bce_logits(tt x, tt y, int red, tt* out);

// Autograd.
terr ts_backward(tt t, tt grad, int retain);
terr ts_autograd_grad(tt* outs, int no, tt* ins, int ni, tt* gouts, int create_graph, int retain, int allow_unused, tt* res);

// PyTorch file import: torch.save()d dict of tensors. Returns count, names
// (malloc'd array of malloc'd strings) and tensors (malloc'd array).
terr ts_load_pt(const char* path, int* n, char*** names, tt** tensors);

#ifdef __cplusplus
}
#endif
#endif
