// c10d over the shim's C ABI. Every collective waits for its work and turns
// Gloo's failures (a peer that closed its socket, a timeout) into an error
// string; nothing here aborts the process.
#include "dist.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

char* dist_msg(const char* m) { return strdup(m ? m : "unknown c10d error"); }

#define DTRY(...)                                              \
  try {                                                        \
    __VA_ARGS__;                                               \
    return nullptr;                                            \
  } catch (const c10::Error& e) {                              \
    return dist_msg(e.what_without_backtrace());               \
  } catch (const std::exception& e) {                          \
    return dist_msg(e.what());                                 \
  } catch (...) {                                              \
    return dist_msg("unknown C++ exception");                  \
  }

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

inline Group& PG(tpg p) { return *static_cast<Group*>(p); }
inline at::Tensor& TT(tt t) { return *static_cast<at::Tensor*>(t); }

// buckets groups the tensors by dtype and device: one flat buffer each, so
// a step costs one collective per dtype instead of one per parameter.
std::map<std::pair<int, std::string>, std::vector<at::Tensor>> buckets(tt* ts, int n) {
  std::map<std::pair<int, std::string>, std::vector<at::Tensor>> b;
  for (int i = 0; i < n; i++) {
    auto& t = TT(ts[i]);
    b[{(int)t.scalar_type(), t.device().str()}].push_back(t);
  }
  return b;
}

at::Tensor flatten(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> flat;
  flat.reserve(ts.size());
  for (auto& t : ts) flat.push_back(t.detach().reshape({-1}));
  return at::cat(flat);
}

void unflatten(const at::Tensor& buf, std::vector<at::Tensor>& ts) {
  at::NoGradGuard ng;
  int64_t off = 0;
  for (auto& t : ts) {
    int64_t n = t.numel();
    t.detach().copy_(buf.narrow(0, off, n).view(t.sizes()));
    off += n;
  }
}

// Overlap is one parameter list's overlapped all-reduce (ts_ov_*). The
// hooks on the parameters' gradient accumulators hold it weakly, so a freed
// Overlap leaves harmless hooks behind.
struct Overlap {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::vector<at::Tensor> params;
  std::vector<std::shared_ptr<torch::autograd::Node>> accs;  // keep the hooked nodes alive
  int64_t cap;
  std::vector<std::vector<size_t>> buckets;  // parameter indices, in launch order
  std::vector<size_t> bucket_of;

  std::mutex mu;
  bool armed = false;
  std::vector<char> ready;
  std::vector<size_t> pending;  // per bucket: gradients still to come
  size_t next = 0;              // buckets start strictly in order, the same on every rank
  size_t early = 0;             // started while backward ran
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  std::vector<at::Tensor> flats;
  std::vector<std::vector<at::Tensor>> members;
  bool record = true;           // first backward: note the arrival order
  std::vector<int64_t> order;

  // split cuts the parameters, in the given order, into buckets of about
  // cap bytes, a new bucket also where dtype or device changes.
  void split(const std::vector<size_t>& seq) {
    buckets.clear();
    bucket_of.assign(params.size(), 0);
    int64_t bytes = 0;
    for (size_t i : seq) {
      auto& p = params[i];
      int64_t nb = p.numel() * (int64_t)p.element_size();
      bool fresh = buckets.empty() || bytes + nb > cap;
      if (!fresh) {
        auto& q = params[buckets.back().front()];
        fresh = q.scalar_type() != p.scalar_type() || q.device() != p.device();
      }
      if (fresh) {
        buckets.emplace_back();
        bytes = 0;
      }
      buckets.back().push_back(i);
      bucket_of[i] = buckets.size() - 1;
      bytes += nb;
    }
  }

  void arm() {
    std::lock_guard<std::mutex> l(mu);
    ready.assign(params.size(), 0);
    pending.clear();
    for (auto& b : buckets) pending.push_back(b.size());
    works.assign(buckets.size(), {});
    flats.assign(buckets.size(), at::Tensor());
    members.assign(buckets.size(), {});
    next = 0;
    early = 0;
    order.clear();
    armed = true;
  }

  // arrived runs on the backward thread once parameter i's gradient is
  // accumulated.
  void arrived(size_t i) {
    std::lock_guard<std::mutex> l(mu);
    if (!armed || ready[i]) return;
    ready[i] = 1;
    if (record) order.push_back((int64_t)i);
    pending[bucket_of[i]]--;
    while (next < buckets.size() && pending[next] == 0) {
      launch(next++);
      early++;
    }
  }

  void launch(size_t b) {
    std::vector<at::Tensor> gs;
    for (size_t i : buckets[b]) {
      auto g = params[i].grad();
      if (g.defined()) gs.push_back(g);
    }
    if (gs.empty()) return;
    flats[b] = flatten(gs);
    members[b] = std::move(gs);
    std::vector<at::Tensor> v{flats[b]};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    works[b] = pg->allreduce(v, o);
  }

  // finish starts the buckets still waiting (parameters without a
  // gradient this step), waits for every all-reduce and writes the results
  // back; after the first step it regroups the buckets by rank 0's
  // arrival order.
  void finish(bool mean) {
    std::unique_lock<std::mutex> l(mu);
    while (next < buckets.size()) launch(next++);
    armed = false;
    for (size_t b = 0; b < buckets.size(); b++) {
      if (!works[b]) continue;
      works[b]->wait();
      if (mean) flats[b].div_((double)pg->getSize());
      unflatten(flats[b], members[b]);
    }
    works.assign(buckets.size(), {});
    flats.assign(buckets.size(), at::Tensor());
    members.assign(buckets.size(), {});
    if (!record) return;
    record = false;
    // Ranks run the same graph, but regrouping must agree exactly: rank
    // 0's order wins; parameters that never arrived go last, as before.
    std::vector<char> seen(params.size(), 0);
    std::vector<int64_t> seq(order);
    for (auto i : seq) seen[i] = 1;
    for (auto& b : buckets)
      for (size_t i : b)
        if (!seen[i]) seq.push_back((int64_t)i);
    auto t = at::tensor(seq, at::kLong);
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions bo;
    bo.rootRank = 0;
    pg->broadcast(v, bo)->wait();
    std::vector<size_t> idx(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    split(idx);
  }

  void abort() {
    std::lock_guard<std::mutex> l(mu);
    armed = false;
    for (auto& w : works)
      if (w) try { w->wait(); } catch (...) {}
    works.assign(buckets.size(), {});
  }
};

}  // namespace

extern "C" {

terr ts_pg_new(const char* addr, int port, int rank, int size, int64_t timeout_ms, int serve_store,
               const char* prefix, int device_kind, const char* device_name, tpg* out) {
  DTRY({
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = (std::uint16_t)port;
    so.isServer = serve_store && rank == 0;
    so.numWorkers = (std::size_t)size;
    so.waitWorkers = true;
    so.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), so);
    store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), store);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    switch (device_kind) {
      case 0: opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(device_name)); break;
      case 1: opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(device_name)); break;
      default: opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    // One worker thread: collectives run one at a time from the step, and
    // the cores belong to the step's own ops.
    opts->threads = 1;
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
    *out = new Group{store, pg};
  })
}

void ts_pg_free(tpg p) { delete static_cast<Group*>(p); }

terr ts_pg_allreduce_sum(tpg p, tt* ts, int n) {
  DTRY({
    for (auto& kv : buckets(ts, n)) {
      std::vector<at::Tensor> buf{flatten(kv.second)};
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      PG(p).pg->allreduce(buf, o)->wait();
      unflatten(buf[0], kv.second);
    }
  })
}

terr ts_pg_broadcast(tpg p, tt* ts, int n, int root) {
  DTRY({
    for (auto& kv : buckets(ts, n)) {
      std::vector<at::Tensor> buf{flatten(kv.second)};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      PG(p).pg->broadcast(buf, o)->wait();
      unflatten(buf[0], kv.second);
    }
  })
}

terr ts_pg_barrier(tpg p) { DTRY(PG(p).pg->barrier()->wait()) }

struct OverlapHandle {
  std::shared_ptr<Overlap> ov;
};

terr ts_ov_new(tpg p, tt* params, int n, int64_t bucket_bytes, tov* out) {
  DTRY({
    auto ov = std::make_shared<Overlap>();
    ov->pg = PG(p).pg;
    ov->cap = bucket_bytes > 0 ? bucket_bytes : 1;
    std::vector<size_t> seq;
    for (int i = 0; i < n; i++) {
      ov->params.push_back(TT(params[i]));
      seq.push_back((size_t)(n - 1 - i));  // backward meets the last layers first
    }
    ov->split(seq);
    std::weak_ptr<Overlap> weak = ov;
    for (size_t i = 0; i < ov->params.size(); i++) {
      auto& prm = ov->params[i];
      if (!prm.requires_grad() || !prm.is_leaf()) continue;
      auto acc = torch::autograd::impl::grad_accumulator(prm);
      if (!acc) continue;
      acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [weak, i](const torch::autograd::variable_list& outs, const torch::autograd::variable_list&) {
            if (auto o = weak.lock()) o->arrived(i);
            return outs;
          }));
      ov->accs.push_back(std::move(acc));
    }
    *out = new OverlapHandle{ov};
  })
}

void ts_ov_free(tov o) { delete static_cast<OverlapHandle*>(o); }

terr ts_ov_backward(tov o, tt loss, int mean, int* early, int* total) {
  auto& ov = *static_cast<OverlapHandle*>(o)->ov;
  try {
    ts_apply_threads();
    ov.arm();
    *total = (int)ov.buckets.size();
    TT(loss).backward();
    ov.finish(mean != 0);
    *early = (int)ov.early;
    return nullptr;
  } catch (const c10::Error& e) {
    ov.abort();
    return dist_msg(e.what_without_backtrace());
  } catch (const std::exception& e) {
    ov.abort();
    return dist_msg(e.what());
  } catch (...) {
    ov.abort();
    return dist_msg("unknown C++ exception");
  }
}

}  // extern "C"
