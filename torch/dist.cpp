// c10d over the shim's C ABI. Every collective waits for its work and turns
// Gloo's failures (a peer that closed its socket, a timeout) into an error
// string; nothing here aborts the process.
#include "dist.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstring>
#include <map>
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

}  // extern "C"
