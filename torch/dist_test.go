package torch

import (
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
