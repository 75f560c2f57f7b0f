package data

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
)

// LoaderOptions configure a Loader. Workers ≤ 0 means 1; Prefetch is the
// number of batches prepared ahead (default 2).
type LoaderOptions struct {
	BatchSize int
	Workers   int
	Seed      int64
	Shuffle   bool
	Flip      bool // mirror each sample with probability ½ (see Flip)
	DropLast  bool
	Prefetch  int
	// Rows, when set, picks the rows of each batch this process loads (a
	// data-parallel rank's share): given the batch's size it returns
	// positions in it, ascending. Order, flips and batch boundaries stay
	// those of the whole batch, so the ranks together load each batch
	// once and a rank's rows are what one process has at those positions.
	Rows func(size int) []int
	// Cameras fills Batch.Cameras with every row's camera, flipped with
	// its row; rows not loaded (outside Rows) read theirs from the
	// dataset, which must then be a CameraSource.
	Cameras bool
}

// Batch is one batch in epoch order; Err is the first error met. With
// LoaderOptions.Rows, Samples holds the rows at positions Rows of a batch
// of Size; otherwise all Size of them (Rows nil). Cameras (with
// LoaderOptions.Cameras) holds all Size rows' cameras.
type Batch struct {
	Index   int
	Samples []*Sample
	Size    int
	Rows    []int
	Cameras [][25]float32
	Err     error
}

// Loader yields batches of a Dataset with a seeded shuffle and N workers.
// Order and flips depend only on (Seed, epoch), not on worker timing.
type Loader struct {
	ds  Dataset
	opt LoaderOptions
}

// NewLoader validates options and returns a Loader.
func NewLoader(ds Dataset, opt LoaderOptions) (*Loader, error) {
	if opt.BatchSize < 1 {
		return nil, fmt.Errorf("loader: batch size %d, want ≥ 1", opt.BatchSize)
	}
	opt.Workers = max(opt.Workers, 1)
	if opt.Prefetch < 1 {
		opt.Prefetch = 2
	}
	if _, ok := ds.(CameraSource); opt.Cameras && opt.Rows != nil && !ok {
		return nil, fmt.Errorf("loader: every row's camera was asked for, but this dataset can only give a camera by loading its sample")
	}
	return &Loader{ds: ds, opt: opt}, nil
}

// Batches returns the number of batches per epoch.
func (l *Loader) Batches() int {
	n := l.ds.Len()
	if l.opt.DropLast {
		return n / l.opt.BatchSize
	}
	return (n + l.opt.BatchSize - 1) / l.opt.BatchSize
}

type batchState struct {
	b    Batch
	pos  []int // batch positions of b.Samples
	mu   sync.Mutex
	left int
	done chan struct{}
}

type job struct {
	st   *batchState
	pos  int
	idx  int
	flip bool
}

// Epoch streams the batches of one epoch; the channel closes at the end or
// when ctx is cancelled.
func (l *Loader) Epoch(ctx context.Context, epoch int) <-chan Batch {
	return l.EpochFrom(ctx, epoch, 0)
}

// EpochFrom is Epoch starting at batch index from: the same order, flips
// and batches as the full epoch's tail, without loading the skipped ones
// (a resumed run continues mid-epoch at no cost).
func (l *Loader) EpochFrom(ctx context.Context, epoch, from int) <-chan Batch {
	out := make(chan Batch)
	n := l.ds.Len()
	r := rand.New(rand.NewPCG(uint64(l.opt.Seed), uint64(epoch)*0x9e3779b97f4a7c15+1))
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if l.opt.Shuffle {
		r.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	flips := make([]bool, n)
	if l.opt.Flip {
		for i := range flips {
			flips[i] = r.IntN(2) == 1
		}
	}
	jobs := make(chan job)
	ordered := make(chan *batchState, l.opt.Prefetch)
	var wg sync.WaitGroup
	for w := 0; w < l.opt.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				s, err := l.ds.Get(j.idx)
				if err == nil && j.flip {
					s = Flip(s)
				}
				j.st.mu.Lock()
				j.st.b.Samples[j.pos] = s
				if err != nil && j.st.b.Err == nil {
					j.st.b.Err = err
				}
				j.st.left--
				last := j.st.left == 0
				j.st.mu.Unlock()
				if last {
					close(j.st.done)
				}
			}
		}()
	}
	// Dispatcher: queue batches in order, at most Prefetch ahead.
	go func() {
		defer close(ordered)
		defer close(jobs)
		for b := max(from, 0); b < l.Batches(); b++ {
			lo, hi := b*l.opt.BatchSize, min((b+1)*l.opt.BatchSize, n)
			var rows []int
			if l.opt.Rows != nil {
				rows = l.opt.Rows(hi - lo)
			}
			pos := rows
			if pos == nil {
				pos = make([]int, hi-lo)
				for i := range pos {
					pos[i] = i
				}
			}
			st := &batchState{b: Batch{Index: b, Samples: make([]*Sample, len(pos)), Size: hi - lo, Rows: rows}, pos: pos, left: len(pos), done: make(chan struct{})}
			if l.opt.Cameras {
				st.b.Cameras, st.b.Err = l.otherCameras(order[lo:hi], flips[lo:hi], pos)
			}
			if len(pos) == 0 {
				close(st.done)
			}
			select {
			case ordered <- st:
			case <-ctx.Done():
				return
			}
			for i, p := range pos {
				if p < 0 || p >= hi-lo {
					panic(fmt.Sprintf("loader: row %d of a batch of %d", p, hi-lo))
				}
				select {
				case jobs <- job{st: st, pos: i, idx: order[lo+p], flip: flips[lo+p]}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	// Emitter: hand batches out in order as they complete.
	go func() {
		defer close(out)
		for st := range ordered {
			select {
			case <-st.done:
			case <-ctx.Done():
				wg.Wait()
				return
			}
			if st.b.Cameras != nil {
				for i, p := range st.pos {
					if s := st.b.Samples[i]; s != nil {
						st.b.Cameras[p] = s.Camera
					}
				}
			}
			select {
			case out <- st.b:
			case <-ctx.Done():
				wg.Wait()
				return
			}
		}
		wg.Wait()
	}()
	return out
}

// otherCameras are a batch's cameras (dataset indexes idx, flips) where
// the rows outside loaded are filled from the dataset's CameraSource; the
// loaded rows' are set from their samples once they arrive.
func (l *Loader) otherCameras(idx []int, flips []bool, loaded []int) ([][25]float32, error) {
	cams := make([][25]float32, len(idx))
	if len(loaded) == len(idx) {
		return cams, nil
	}
	src := l.ds.(CameraSource)
	mine := make([]bool, len(idx))
	for _, p := range loaded {
		if p >= 0 && p < len(mine) { // a bad position panics when dispatched
			mine[p] = true
		}
	}
	for p, i := range idx {
		if mine[p] {
			continue
		}
		c, err := src.Camera(i)
		if err != nil {
			return nil, err
		}
		if flips[p] {
			c = FlipCamera(c)
		}
		cams[p] = c
	}
	return cams, nil
}
