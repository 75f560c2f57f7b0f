// C ABI over libtorch's c10d: a TCP rendezvous store and a Gloo process
// group. Same conventions as shim.h: a malloc'd error string or NULL.
#ifndef DDGI_TORCH_DIST_H
#define DDGI_TORCH_DIST_H

#include <stdint.h>
#include "shim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void* tpg; // owned process group (store and Gloo group together)

// serve_store: rank 0 serves the TCP store (0: every rank is a client of
// a store someone else serves, such as torchrun's agent); prefix keeps the
// group's keys apart from other users of that store. device_kind: 0 bind
// to the host name or address device_name, 1 to the network interface
// device_name, 2 libtorch's default (this host's name, falling back to
// loopback). timeout_ms bounds the rendezvous and every collective.
terr ts_pg_new(const char* master_addr, int master_port, int rank, int size, int64_t timeout_ms,
               int serve_store, const char* prefix, int device_kind, const char* device_name, tpg* out);
void ts_pg_free(tpg pg);
// Sums the tensors across ranks in place, one flat bucket per dtype.
terr ts_pg_allreduce_sum(tpg pg, tt* ts, int n);
// Overwrites the tensors with root's, one flat bucket per dtype.
terr ts_pg_broadcast(tpg pg, tt* ts, int n, int root);
terr ts_pg_barrier(tpg pg);

// Data-parallel backward with the gradient all-reduce overlapped (c10d's
// DDP scheme on the shim's own hooks): the parameters are split into
// buckets of about bucket_bytes, and each bucket's all-reduce starts as
// soon as backward has accumulated its last gradient, while backward goes
// on with earlier layers. The first backward records the order in which
// gradients arrive; rank 0's order then regroups the buckets for later
// steps. The group must outlive it.
typedef void* tov;
terr ts_ov_new(tpg pg, tt* params, int n, int64_t bucket_bytes, tov* out);
void ts_ov_free(tov ov);
// Backpropagates loss (a scalar) and leaves every parameter's gradient
// summed over the ranks, or averaged when mean. Parameters without a
// gradient are left alone (their bucket mates are still reduced). early
// returns how many buckets had started their all-reduce before backward
// returned, of total.
terr ts_ov_backward(tov ov, tt loss, int mean, int* early, int* total);

#ifdef __cplusplus
}
#endif
#endif
