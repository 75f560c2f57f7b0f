package torch

import (
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Two ranks in one process over loopback: the sum, the broadcast and the
// barrier are libtorch's Gloo collectives, checked value by value.
func TestProcessGroupCollectives(t *testing.T) {
	checkCollectives(t, Rendezvous{Addr: "127.0.0.1", Port: freePort(t), Prefix: "test/"})
}

// With a store someone else serves (torchrun's agent; here a group of one
// that serves it), every rank joins as a client under its own prefix.
func TestProcessGroupOnAnAgentsStore(t *testing.T) {
	port := freePort(t)
	agent, err := NewProcessGroup(Rendezvous{Addr: "127.0.0.1", Port: port, Prefix: "agent/"}, 0, 1, 20*time.Second, GlooDevice{Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	checkCollectives(t, Rendezvous{Addr: "127.0.0.1", Port: port, Client: true, Prefix: "ddgi/0/"})
}

func checkCollectives(t *testing.T, rv Rendezvous) {
	t.Helper()
	const size = 2
	got := make([][]float32, size)
	gotL := make([][]int64, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := 0; r < size; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			g, err := NewProcessGroup(rv, r, size, 20*time.Second, GlooDevice{Host: "127.0.0.1"})
			if err != nil {
				errs[r] = err
				return
			}
			defer g.Close()
			a := FromFloat32([]float32{1 + float32(r), 2}, 2)
			b := FromFloat32([]float32{10 * float32(r+1)}, 1, 1)
			l := FromInt64([]int64{int64(100 + r)}, 1)
			defer a.Free()
			defer b.Free()
			defer l.Free()
			if errs[r] = g.AllReduceSum([]*Tensor{a, b, l}); errs[r] != nil {
				return
			}
			c := FromFloat32([]float32{float32(r), float32(r)}, 2)
			defer c.Free()
			if errs[r] = g.Broadcast([]*Tensor{c}, 1); errs[r] != nil {
				return
			}
			if errs[r] = g.Barrier(); errs[r] != nil {
				return
			}
			got[r] = append(append(a.Float32s(), b.Float32s()...), c.Float32s()...)
			gotL[r] = l.Int64s()
		}(r)
	}
	wg.Wait()
	for r := 0; r < size; r++ {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		want := []float32{3, 4, 30, 1, 1}
		for i := range want {
			if got[r][i] != want[i] {
				t.Fatalf("rank %d: got %v, want %v", r, got[r], want)
			}
		}
		if gotL[r][0] != 201 {
			t.Fatalf("rank %d: int64 sum %v, want 201", r, gotL[r])
		}
	}
}

// A rank whose peer never comes gets an error within the timeout, not a hang.
func TestProcessGroupTimesOutAlone(t *testing.T) {
	start := time.Now()
	_, err := NewProcessGroup(Rendezvous{Addr: "127.0.0.1", Port: freePort(t)}, 0, 2, 2*time.Second, GlooDevice{Host: "127.0.0.1"})
	if err == nil {
		t.Fatal("joined a group of 2 alone")
	}
	if el := time.Since(start); el > 15*time.Second {
		t.Fatalf("took %v to give up", el)
	}
	if !strings.Contains(err.Error(), "rank 0 of 2") {
		t.Fatalf("error does not say which rank: %v", err)
	}
	t.Log(err)
}

// Overlapped backward leaves every rank with the mean of the ranks'
// gradients, step after step (the second and third on buckets regrouped
// by arrival order), as backward followed by one all-reduce does; a
// parameter outside the graph keeps no gradient; small buckets start
// before backward returns.
func TestOverlapBackwardAveragesGradients(t *testing.T) {
	rv := Rendezvous{Addr: "127.0.0.1", Port: freePort(t), Prefix: "ov/"}
	const size, steps = 2, 3
	type result struct {
		got, want [][]float32
		unused    bool
		early     []int
		buckets   int
	}
	res := make([]result, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := range size {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			errs[r] = Try(func() {
				g, err := NewProcessGroup(rv, r, size, 20*time.Second, GlooDevice{Host: "127.0.0.1"})
				if err != nil {
					errs[r] = err
					return
				}
				defer g.Close()
				gen := NewGenerator(7)
				w1 := Randn(gen, []int64{16, 64}, Float32, CPU).SetRequiresGrad(true)
				w2 := Randn(gen, []int64{64, 64}, Float32, CPU).SetRequiresGrad(true)
				b2 := Randn(gen, []int64{64}, Float32, CPU).SetRequiresGrad(true)
				w3 := Randn(gen, []int64{64, 1}, Float32, CPU).SetRequiresGrad(true)
				unused := Randn(gen, []int64{8}, Float32, CPU).SetRequiresGrad(true)
				params := []*Tensor{w1, w2, b2, unused, w3}
				ov, err := g.NewOverlap(params, 4096) // 16 KiB weights: several buckets
				if err != nil {
					errs[r] = err
					return
				}
				defer ov.Close()
				data := NewGenerator(uint64(100 + r)) // each rank its own rows
				for step := range steps {
					x := Randn(data, []int64{8, 16}, Float32, CPU)
					loss := func() *Tensor {
						h := x.Matmul(w1).Tanh().Matmul(w2).Add(b2).Tanh()
						return h.Matmul(w3).Square().MeanAll().MulScalar(float64(step + 1))
					}
					used := []*Tensor{w1, w2, b2, w3}
					// Reference: plain backward, then the all-reduce of the sum.
					loss().Backward()
					var want []*Tensor
					for _, p := range used {
						want = append(want, p.Grad().Detach().Clone())
						p.ZeroGrad()
					}
					if errs[r] = g.AllReduceSum(want); errs[r] != nil {
						return
					}
					if errs[r] = ov.Backward(loss(), true); errs[r] != nil {
						return
					}
					var got, wantV [][]float32
					for i, p := range used {
						got = append(got, p.Grad().Float32s())
						wantV = append(wantV, want[i].DivScalar(size).Float32s())
						p.ZeroGrad()
					}
					res[r].got = append(res[r].got, got...)
					res[r].want = append(res[r].want, wantV...)
					res[r].early = append(res[r].early, ov.Early)
					res[r].buckets = ov.Buckets
					res[r].unused = unused.Grad() != nil
				}
			})
		}(r)
	}
	wg.Wait()
	for r := range size {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		var worst float64
		for i := range res[r].got {
			for j := range res[r].got[i] {
				worst = max(worst, math.Abs(float64(res[r].got[i][j]-res[r].want[i][j])))
			}
		}
		if worst > 1e-5 {
			t.Errorf("rank %d: overlapped gradients %g from backward + all-reduce", r, worst)
		}
		if res[r].unused {
			t.Errorf("rank %d: the unused parameter got a gradient", r)
		}
		if res[r].buckets < 3 || res[r].early[len(res[r].early)-1] == 0 {
			t.Errorf("rank %d: %d buckets, %v started during backward", r, res[r].buckets, res[r].early)
		}
		t.Logf("rank %d: max |Δgrad| %.3g, %d buckets, started during backward per step %v", r, worst, res[r].buckets, res[r].early)
	}
	if res[0].got[0][0] != res[1].got[0][0] {
		t.Error("ranks hold different gradients")
	}
}

// BenchmarkOverlapBackward times one data-parallel step of two in-process
// ranks (one thread each) on an 8-layer MLP of 4.2M parameters, the size of
// ddgi's inversion nets: backward then one all-reduce of the 16 MiB of
// gradients ("after"), against the all-reduce overlapped with backward in
// 1 MiB buckets ("overlap"). ns/op is one step of both ranks.
func BenchmarkOverlapBackward(b *testing.B) {
	for _, mode := range []string{"after", "overlap"} {
		b.Run(mode, func(b *testing.B) {
			SetThreads(1)
			rv := Rendezvous{Addr: "127.0.0.1", Port: freePortB(b), Prefix: "bench/"}
			start := make(chan struct{})
			var ready, done sync.WaitGroup
			errs := make([]error, 2)
			for r := range 2 {
				ready.Add(1)
				done.Add(1)
				go func(r int) {
					defer done.Done()
					errs[r] = Try(func() {
						g, err := NewProcessGroup(rv, r, 2, time.Minute, GlooDevice{Host: "127.0.0.1"})
						if err != nil {
							panic(&Error{Op: "bench", Msg: err.Error()})
						}
						defer g.Close()
						gen := NewGenerator(1)
						var ws []*Tensor
						for range 8 {
							ws = append(ws, Randn(gen, []int64{724, 724}, Float32, CPU).MulScalar(0.04).SetRequiresGrad(true))
						}
						ov, err := g.NewOverlap(ws, 1<<20)
						if err != nil {
							panic(&Error{Op: "bench", Msg: err.Error()})
						}
						defer ov.Close()
						x := Randn(NewGenerator(uint64(r)), []int64{64, 724}, Float32, CPU)
						// No Scoped here: scopes are not per goroutine, and
						// the two ranks run side by side in one process.
						step := func() {
							func() {
								h := x
								for _, w := range ws {
									h = h.Matmul(w).Tanh()
								}
								loss := h.Square().MeanAll()
								if mode == "overlap" {
									if err := ov.Backward(loss, true); err != nil {
										panic(&Error{Op: "bench", Msg: err.Error()})
									}
								} else {
									loss.Backward()
									gs := make([]*Tensor, len(ws))
									for i, w := range ws {
										gs[i] = w.Grad()
									}
									if err := g.AllReduceSum(gs); err != nil {
										panic(&Error{Op: "bench", Msg: err.Error()})
									}
								}
								for _, w := range ws {
									w.ZeroGrad()
								}
							}()
						}
						step() // warm up; the overlap regroups its buckets
						ready.Done()
						<-start
						for range b.N {
							step()
						}
					})
				}(r)
			}
			ready.Wait()
			b.ResetTimer()
			close(start)
			done.Wait()
			for r, err := range errs {
				if err != nil {
					b.Fatalf("rank %d: %v", r, err)
				}
			}
		})
	}
}

func freePortB(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
