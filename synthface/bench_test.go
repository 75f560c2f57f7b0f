package synthface

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchRender renders b.N samples on all cores, as the data loader does,
// and reports samples per second.
func benchRender(b *testing.B, size int) {
	workers := runtime.GOMAXPROCS(0)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				Render(SampleParams(i), size)
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "samples/s")
}

func BenchmarkRender64(b *testing.B)  { benchRender(b, 64) }
func BenchmarkRender128(b *testing.B) { benchRender(b, 128) }
func BenchmarkRender256(b *testing.B) { benchRender(b, 256) }
