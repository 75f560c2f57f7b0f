// The meta device as a stand-in GPU. libtorch 1.13 has shape-only (meta)
// kernels for most ops but not all (index_select, batch norm, …). This
// fallback serves the rest: it checks that every tensor operand is on meta
// (CPU scalars aside, as on CUDA), runs the op on zeros of the same shapes
// on the CPU, and hands the results back on meta. Values are meaningless;
// shapes, dtypes and devices are what tests check with it.
#include "shim.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <mutex>

namespace {

at::Tensor meta_operand_on_cpu(const at::Tensor& t, const c10::OperatorHandle& op) {
  if (!t.defined()) return t;
  if (t.is_meta()) return at::zeros(t.sizes(), t.options().device(at::kCPU));
  if (t.is_cpu() && t.dim() == 0) return t;
  TORCH_CHECK(false, "Expected all tensors to be on the same device, but found at least two devices, meta and ",
              t.device(), "! (", op.schema().name(), ")");
}

c10::IValue operand_on_cpu(const c10::IValue& v, const c10::OperatorHandle& op) {
  if (v.isTensor()) return meta_operand_on_cpu(v.toTensor(), op);
  if (v.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : v.toTensorList()) out.push_back(meta_operand_on_cpu(t, op));
    return out;
  }
  if (v.isList()) {
    auto in = v.toList();
    c10::impl::GenericList out(in.elementType());
    for (const c10::IValue& e : in) out.push_back(operand_on_cpu(e, op));
    return out;
  }
  return v;
}

c10::IValue result_on_meta(const c10::IValue& v) {
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    return t.defined() ? t.to(at::kMeta) : t;
  }
  if (v.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : v.toTensorList()) out.push_back(t.defined() ? t.to(at::kMeta) : t);
    return out;
  }
  return v;
}

void meta_fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& args = op.schema().arguments();
  const size_t first = stack->size() - args.size();
  // In-place and out= operands: the caller keeps using the meta tensor it
  // passed, so it takes the result's shape and is what the op returns.
  std::vector<std::pair<at::Tensor, at::Tensor>> written;  // meta, its CPU stand-in
  for (size_t i = 0; i < args.size(); i++) {
    c10::IValue orig = (*stack)[first + i];
    (*stack)[first + i] = operand_on_cpu(orig, op);
    const auto* alias = args[i].alias_info();
    if (alias && alias->isWrite() && orig.isTensor() && orig.toTensor().defined() && orig.toTensor().is_meta())
      written.emplace_back(orig.toTensor(), (*stack)[first + i].toTensor());
  }
  op.callBoxed(stack);
  for (auto& w : written)
    if (!w.first.sizes().equals(w.second.sizes())) w.first.resize_(w.second.sizes());
  const size_t nret = op.schema().returns().size();
  for (size_t i = stack->size() - nret; i < stack->size(); i++) {
    c10::IValue& v = (*stack)[i];
    bool aliased = false;
    if (v.isTensor())
      for (auto& w : written)
        if (v.toTensor().is_same(w.second)) {
          v = w.first;
          aliased = true;
          break;
        }
    if (!aliased) v = result_on_meta(v);
  }
}

}  // namespace

extern "C" void ts_use_meta_fallback(void) {
  static std::once_flag once;
  std::call_once(once, [] {
    // Registered on first use of the meta device, never for CPU/CUDA work.
    auto* lib = new torch::Library(torch::Library::IMPL, "_", c10::DispatchKey::Meta, __FILE__, __LINE__);
    lib->fallback(torch::CppFunction::makeFromBoxedFunction<&meta_fallback>());
  });
}
