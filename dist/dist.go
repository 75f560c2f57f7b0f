// Package dist runs ddgi's trainers data-parallel over libtorch's own
// distributed engine, c10d: a TCP rendezvous store and Gloo collectives,
// joined by torchrun's environment convention (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT). A Group is what train.Loop.Group expects.
package dist

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"ddgi/torch"
)

// DefaultTimeout bounds the rendezvous and every collective: a rank that
// waits longer for a peer (dead, or busy beyond reason) fails with an error.
// It must exceed the longest time one rank works alone, such as rank 0
// drawing a preview while the others wait.
const DefaultTimeout = 10 * time.Minute

// Config places this process in a group.
type Config struct {
	Rank, Size int
	// LocalRank is the rank's index on its machine (torchrun's LOCAL_RANK;
	// -1 when unset): it picks the rank's GPU (RankDevice).
	LocalRank int
	// Addr and Port reach rank 0, which serves the rendezvous store.
	Addr string
	Port int
	// Timeout bounds the rendezvous and every collective (0: DefaultTimeout).
	Timeout time.Duration
	// Interface is the network interface Gloo binds to (GLOO_SOCKET_IFNAME);
	// empty: loopback for a loopback Addr, else this host's name.
	Interface string
	// AgentStore: a launcher already serves the store at Addr:Port
	// (torchrun sets TORCHELASTIC_USE_AGENT_STORE=True), so rank 0 joins it
	// as a client instead of serving one.
	AgentStore bool
	// Attempt numbers a restarted group (TORCHELASTIC_RESTART_COUNT), so a
	// relaunch in the same store does not meet the last attempt's keys.
	Attempt int
	// BucketMB sizes the gradient buckets whose all-reduce overlaps
	// backward (DDGI_BUCKET_MB; 0: DefaultBucketMB; negative: no overlap,
	// one all-reduce after backward).
	BucketMB float64
}

// DefaultBucketMB is the gradient bucket size: ddgi's nets hold 4–30 MB of
// gradients, so DDP's 25 MB buckets would leave nothing to overlap.
const DefaultBucketMB = 1.0

// FromEnv reads torchrun's variables. ok is false when WORLD_SIZE is unset
// (a plain single-process run); a partial or malformed set is an error.
func FromEnv() (c Config, ok bool, err error) {
	ws, set := os.LookupEnv("WORLD_SIZE")
	if !set || ws == "" {
		return Config{}, false, nil
	}
	num := func(name, v string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("%s=%q: want an integer", name, v)
		}
		return n, nil
	}
	if c.Size, err = num("WORLD_SIZE", ws); err != nil {
		return Config{}, false, err
	}
	if c.Rank, err = num("RANK", os.Getenv("RANK")); err != nil {
		return Config{}, false, err
	}
	c.Addr = os.Getenv("MASTER_ADDR")
	if c.Addr == "" {
		return Config{}, false, fmt.Errorf("WORLD_SIZE=%d set without MASTER_ADDR (rank 0's address)", c.Size)
	}
	if c.Port, err = num("MASTER_PORT", os.Getenv("MASTER_PORT")); err != nil {
		return Config{}, false, err
	}
	c.Interface = os.Getenv("GLOO_SOCKET_IFNAME")
	c.LocalRank = -1
	if v := os.Getenv("LOCAL_RANK"); v != "" {
		if c.LocalRank, err = num("LOCAL_RANK", v); err != nil {
			return Config{}, false, err
		}
	}
	c.AgentStore = strings.EqualFold(os.Getenv("TORCHELASTIC_USE_AGENT_STORE"), "true")
	if v := os.Getenv("TORCHELASTIC_RESTART_COUNT"); v != "" {
		if c.Attempt, err = num("TORCHELASTIC_RESTART_COUNT", v); err != nil {
			return Config{}, false, err
		}
	}
	if v := os.Getenv("DDGI_BUCKET_MB"); v != "" {
		if c.BucketMB, err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil || c.BucketMB == 0 {
			return Config{}, false, fmt.Errorf("DDGI_BUCKET_MB=%q: want a size in MB such as 1, or -1 for no overlap", v)
		}
	}
	if v := os.Getenv("DDGI_DIST_TIMEOUT"); v != "" {
		if c.Timeout, err = time.ParseDuration(v); err != nil || c.Timeout <= 0 {
			return Config{}, false, fmt.Errorf("DDGI_DIST_TIMEOUT=%q: want a positive duration such as 5m", v)
		}
	}
	return c, true, c.Check()
}

// Check validates a Config before any connection is tried.
func (c Config) Check() error {
	switch {
	case c.Size < 1:
		return fmt.Errorf("world size %d: want at least 1", c.Size)
	case c.Rank < 0 || c.Rank >= c.Size:
		return fmt.Errorf("rank %d outside a world of %d (ranks 0–%d)", c.Rank, c.Size, c.Size-1)
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("master port %d outside 1–65535", c.Port)
	case c.Timeout < 0:
		return fmt.Errorf("timeout %v: want > 0", c.Timeout)
	}
	return nil
}

// device is where Gloo listens: the named interface, loopback when the
// whole group is on this machine, else the address this host's name
// resolves to (libtorch's default, as torch.distributed does).
func (c Config) device() torch.GlooDevice {
	if c.Interface != "" {
		return torch.GlooDevice{Interface: c.Interface}
	}
	if isLoopback(c.Addr) {
		return torch.GlooDevice{Host: "127.0.0.1"}
	}
	return torch.GlooDevice{}
}

func isLoopback(addr string) bool {
	if addr == "localhost" {
		return true
	}
	ip := net.ParseIP(addr)
	return ip != nil && ip.IsLoopback()
}

// Group is a joined c10d Gloo group (train.Group).
type Group struct {
	pg       *torch.ProcessGroup
	bucket   int64 // bytes; < 0: no overlap
	overlaps []*torch.Overlap
}

// Join connects to the group and waits until every rank has joined (at
// most the timeout).
func Join(c Config) (*Group, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	rv := torch.Rendezvous{Addr: c.Addr, Port: c.Port, Client: c.AgentStore, Prefix: fmt.Sprintf("ddgi/%d/", c.Attempt)}
	pg, err := torch.NewProcessGroup(rv, c.Rank, c.Size, c.Timeout, c.device())
	if err != nil {
		return nil, fmt.Errorf("joining the training group: %w (every rank must start within %v and reach %s:%d)", err, c.Timeout, c.Addr, c.Port)
	}
	mb := c.BucketMB
	if mb == 0 {
		mb = DefaultBucketMB
	}
	return &Group{pg: pg, bucket: int64(mb * (1 << 20))}, nil
}

// RankDevice is the device a rank trains on for a --device spec: a bare
// "cuda" becomes cuda:LOCAL_RANK, one GPU per rank on each machine, as
// torchrun jobs place themselves; an explicit index, "cpu", or a config
// without a local rank keep the spec.
func RankDevice(spec string, c Config) string {
	if strings.TrimSpace(spec) == "cuda" && c.LocalRank >= 0 {
		return "cuda:" + strconv.Itoa(c.LocalRank)
	}
	return spec
}

// Rank is this process's place in the group, 0 for the one that writes.
func (g *Group) Rank() int { return g.pg.Rank }

// Size is the number of ranks.
func (g *Group) Size() int { return g.pg.Size }

// AllReduceMean replaces each tensor by its mean over the ranks: Gloo sums
// one flat bucket per dtype, then each rank divides by the group size.
func (g *Group) AllReduceMean(ts []*torch.Tensor) error {
	if err := g.pg.AllReduceSum(ts); err != nil {
		return err
	}
	if g.Size() == 1 {
		return nil
	}
	return torch.Try(func() {
		torch.NoGrad(func() {
			for _, t := range ts {
				switch t.DType() {
				case torch.Float32, torch.Float64, torch.Float16, torch.BFloat16:
					t.MulScalarIn(1 / float64(g.Size()))
				}
			}
		})
	})
}

// AllReduceSum replaces each tensor by its sum over the ranks.
func (g *Group) AllReduceSum(ts []*torch.Tensor) error { return g.pg.AllReduceSum(ts) }

// Broadcast overwrites each tensor with rank 0's copy.
func (g *Group) Broadcast(ts []*torch.Tensor) error { return g.pg.Broadcast(ts, 0) }

// Barrier returns once every rank has reached it.
func (g *Group) Barrier() error { return g.pg.Barrier() }

// Backward backpropagates the scalar loss and leaves the params' gradients
// summed over the ranks, or averaged when mean, with the all-reduce of each
// gradient bucket overlapping the rest of backward (torch.Overlap, kept
// per parameter list for the run). With overlap off (BucketMB < 0) it runs
// backward, then one all-reduce.
func (g *Group) Backward(loss *torch.Tensor, params []*torch.Tensor, mean bool) error {
	if g.bucket < 0 {
		loss.Backward()
		var grads []*torch.Tensor
		for _, p := range params {
			if gr := p.Grad(); gr != nil {
				grads = append(grads, gr)
			}
		}
		if mean {
			return g.AllReduceMean(grads)
		}
		return g.AllReduceSum(grads)
	}
	ov, err := g.overlap(params)
	if err != nil {
		return err
	}
	return ov.Backward(loss, mean)
}

// overlap is the Overlap made for exactly this parameter list.
func (g *Group) overlap(params []*torch.Tensor) (*torch.Overlap, error) {
next:
	for _, ov := range g.overlaps {
		have := ov.Params()
		if len(have) != len(params) {
			continue
		}
		for i := range have {
			if have[i] != params[i] {
				continue next
			}
		}
		return ov, nil
	}
	ov, err := g.pg.NewOverlap(params, g.bucket)
	if err != nil {
		return nil, err
	}
	g.overlaps = append(g.overlaps, ov)
	return ov, nil
}

// Close leaves the group.
func (g *Group) Close() {
	for _, ov := range g.overlaps {
		ov.Close()
	}
	g.overlaps = nil
	g.pg.Close()
}
