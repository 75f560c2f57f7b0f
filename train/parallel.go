package train

import (
	"fmt"
	"path/filepath"

	"ddgi/nn"
	"ddgi/torch"
)

// Group is the data-parallel world a Loop runs in: every rank runs the same
// Loop on its share of each global batch (package dist implements it over
// libtorch's c10d). Every method is a collective: all ranks call it in the
// same order.
type Group interface {
	Rank() int
	Size() int
	// AllReduceMean replaces each tensor by its mean over the ranks.
	AllReduceMean(ts []*torch.Tensor) error
	// AllReduceSum replaces each tensor by its sum over the ranks.
	AllReduceSum(ts []*torch.Tensor) error
	// Broadcast overwrites each tensor with rank 0's copy.
	Broadcast(ts []*torch.Tensor) error
	Barrier() error
}

// Distributed is a Job that can run as one rank of a Group: it computes
// only its rows of every global batch and averages its gradients over the
// ranks before each optimizer update, so N ranks step exactly as one
// process with the whole batch would.
type Distributed interface {
	Job
	// Distribute is called once, before resume; it fails when the job's
	// batch does not split evenly over the ranks.
	Distribute(s Shard) error
	// Replicated lists the tensors every rank must hold alike (weights,
	// optimizer moments) in one fixed order: rank 0 broadcasts them after
	// resume.
	Replicated() []*torch.Tensor
}

// Shard is one rank's place in a data-parallel run. The zero value (and
// Size 1) is a single process: all rows, gradients untouched.
type Shard struct {
	Rank, Size int
	group      Group
}

// Rows is the rank's slice [lo, lo+n) of a global batch of batch rows.
func (s Shard) Rows(batch int) (lo, n int) {
	if s.Size <= 1 {
		return 0, batch
	}
	n = batch / s.Size
	return s.Rank * n, n
}

// Positions are the batch positions of Rows, for data.LoaderOptions.Rows
// (nil in one process: every row).
func (s Shard) Positions(batch int) []int {
	if s.Size <= 1 {
		return nil
	}
	lo, n := s.Rows(batch)
	pos := make([]int, n)
	for i := range pos {
		pos[i] = lo + i
	}
	return pos
}

// Check fails when a global batch does not split evenly over the ranks.
func (s Shard) Check(batch int) error {
	if s.Size > 1 && batch%s.Size != 0 {
		return fmt.Errorf("a batch of %d does not split over %d ranks; use a multiple of %d", batch, s.Size, s.Size)
	}
	return nil
}

// SyncGrads averages the parameters' gradients over the ranks (a no-op in
// one process). Call it after backward, before clipping and the optimizer
// update. A failed collective panics with *torch.Error, which the Loop
// turns into the step's error (steps run inside torch.Try).
func (s Shard) SyncGrads(params []nn.Named) {
	s.reduceGrads(params, false, "averaging gradients")
}

// overlapper is a Group that can all-reduce gradients while backward runs
// (dist.Group).
type overlapper interface {
	Backward(loss *torch.Tensor, params []*torch.Tensor, mean bool) error
}

// Backward backpropagates the scalar loss and averages the parameters'
// gradients over the ranks: loss.Backward then SyncGrads, except that a
// group that can overlaps each bucket's all-reduce with the rest of
// backward, as PyTorch's DDP does. Plain backward in one process. A failed
// collective panics with *torch.Error, as SyncGrads.
func (s Shard) Backward(loss *torch.Tensor, params []nn.Named) {
	s.backward(loss, params, true)
}

// BackwardSum is Backward with the gradients added over the ranks
// (SumGrads' case: a loss over a Gathered batch).
func (s Shard) BackwardSum(loss *torch.Tensor, params []nn.Named) {
	s.backward(loss, params, false)
}

func (s Shard) backward(loss *torch.Tensor, params []nn.Named, mean bool) {
	if s.group == nil || s.Size <= 1 {
		loss.Backward()
		return
	}
	ob, ok := s.group.(overlapper)
	if !ok {
		loss.Backward()
		s.reduceGrads(params, !mean, "reducing gradients")
		return
	}
	ts := make([]*torch.Tensor, len(params))
	for i, p := range params {
		ts[i] = p.T
	}
	if err := ob.Backward(loss, ts, mean); err != nil {
		panic(&torch.Error{Op: "reducing gradients", Msg: err.Error()})
	}
}

// reduceGrads sums or averages the parameters' gradients over the ranks
// (a no-op in one process); a failure panics with *torch.Error named op.
func (s Shard) reduceGrads(params []nn.Named, sum bool, op string) {
	if s.group == nil || s.Size <= 1 {
		return
	}
	var grads []*torch.Tensor
	torch.Scoped(func() {
		for _, p := range params {
			if g := p.T.Grad(); g != nil {
				grads = append(grads, g)
			}
		}
		reduce := s.group.AllReduceMean
		if sum {
			reduce = s.group.AllReduceSum
		}
		if err := reduce(grads); err != nil {
			panic(&torch.Error{Op: op, Msg: err.Error()})
		}
	})
}

// Gather returns the whole batch of x [n,…]: every rank's rows in rank
// order (each rank holding n, as Rows splits). Only the rank's own rows
// carry x's graph, so a loss over the gathered batch (CLIP's contrastive
// loss couples every row with every other) sends gradients to this rank's
// rows alone; SumGrads then adds the ranks' parts. x itself in one
// process. A failed collective panics with *torch.Error, as SyncGrads.
func (s Shard) Gather(x *torch.Tensor) *torch.Tensor {
	if s.group == nil || s.Size <= 1 {
		return x
	}
	n, lo := x.Size(0), int64(s.Rank)*x.Size(0)
	shape := x.Shape()
	total := n * int64(s.Size)
	buf := torch.Zeros(append([]int64{total}, shape[1:]...), x.DType(), x.Device())
	torch.NoGrad(func() { buf.Narrow(0, lo, n).CopyIn(x.Detach()) })
	if err := s.group.AllReduceSum([]*torch.Tensor{buf}); err != nil {
		panic(&torch.Error{Op: "gathering the batch", Msg: err.Error()})
	}
	var parts []*torch.Tensor
	if lo > 0 {
		parts = append(parts, buf.Narrow(0, 0, lo))
	}
	parts = append(parts, x)
	if lo+n < total {
		parts = append(parts, buf.Narrow(0, lo+n, total-lo-n))
	}
	return torch.Cat(parts, 0)
}

// SumGrads adds the parameters' gradients over the ranks: after a loss
// over a Gathered batch each rank holds its rows' share of the gradient.
// (A parameter the loss uses directly, such as a temperature, gets the
// whole gradient on every rank: SyncGrads averages those.)
func (s Shard) SumGrads(params []nn.Named) {
	s.reduceGrads(params, true, "adding gradients")
}

// Mean is v's mean over the ranks (v itself in one process): a statistic
// every rank must update alike, such as a running mean of the batch. A
// failed collective panics with *torch.Error, as SyncGrads.
func (s Shard) Mean(v float64) float64 {
	if s.group == nil || s.Size <= 1 {
		return v
	}
	t := torch.FromFloat64([]float64{v}, 1)
	defer t.Free()
	if err := s.group.AllReduceMean([]*torch.Tensor{t}); err != nil {
		panic(&torch.Error{Op: "averaging over the ranks", Msg: err.Error()})
	}
	return t.Float64s()[0]
}

// distributed is the Loop's view of its group: nil in one process.
type distributed struct {
	g   Group
	job Distributed
}

// startGroup hands the job its shard; a Group of one is no group at all.
func (l *Loop) startGroup(job Job) (*distributed, error) {
	if l.Group == nil || l.Group.Size() <= 1 {
		return nil, nil
	}
	dj, ok := job.(Distributed)
	if !ok {
		return nil, fmt.Errorf("%s cannot run on several ranks yet (its job does not split batches)", l.Label)
	}
	if err := dj.Distribute(Shard{Rank: l.Group.Rank(), Size: l.Group.Size(), group: l.Group}); err != nil {
		return nil, err
	}
	return &distributed{g: l.Group, job: dj}, nil
}

func (d *distributed) root() bool { return d == nil || d.g.Rank() == 0 }

// resumeFollower loads, on a rank other than 0, the checkpoint rank 0
// resumed from (done 0: none). The ranks share the run folder.
func (d *distributed) resumeFollower(run *Run, job Job, done int64) error {
	if done == 0 {
		return nil
	}
	c := Checkpoint{Dir: filepath.Join(run.Path(checkpointsDir), fmt.Sprintf("%012d", done)), Done: done}
	if err := c.Verify(); err != nil {
		return fmt.Errorf("rank %d: rank 0 resumes from %s, which this rank cannot read (%v); every rank needs the run folder on shared storage", d.g.Rank(), c.Dir, err)
	}
	return job.Load(c.Dir)
}

// agree makes every rank resume at rank 0's checkpoint and hold rank 0's
// tensors.
func (d *distributed) agree(run *Run, job Job, done int64) (int64, error) {
	v := torch.FromInt64([]int64{done}, 1)
	defer v.Free()
	if err := d.g.Broadcast([]*torch.Tensor{v}); err != nil {
		return 0, fmt.Errorf("resume: %w", err)
	}
	if !d.root() {
		done = v.Int64s()[0]
		if err := d.resumeFollower(run, job, done); err != nil {
			return 0, err
		}
	}
	if ts := d.job.Replicated(); len(ts) > 0 {
		if err := d.g.Broadcast(ts); err != nil {
			return 0, fmt.Errorf("resume: broadcasting rank 0's weights: %w", err)
		}
	}
	return done, nil
}

// decide makes one decision for every rank after a step: save (rank 0's
// clock says a checkpoint is due) and stop (any rank was interrupted).
func (d *distributed) decide(save, stop bool) (bool, bool, error) {
	flag := func(b bool) float32 {
		if b {
			return 1
		}
		return 0
	}
	if !d.root() {
		save = false
	}
	v := torch.FromFloat32([]float32{flag(save), flag(stop)}, 2)
	defer v.Free()
	if err := d.g.AllReduceMean([]*torch.Tensor{v}); err != nil {
		return false, false, err
	}
	f := v.Float32s()
	return f[0] > 0, f[1] > 0, nil
}

// fail reports a collective's failure in words a user can act on.
func (d *distributed) fail(err error) error {
	return fmt.Errorf("rank %d of %d: %w (another rank stopped or is unreachable; the last complete checkpoint is intact, rerun to resume)", d.g.Rank(), d.g.Size(), err)
}

// meanLosses replaces each rank's losses by their mean over the ranks: the
// loss of the global batch, as one process would log it.
func (d *distributed) meanLosses(losses map[string]float64) error {
	keys := SortedKeys(losses)
	if len(keys) == 0 {
		return nil
	}
	vals := make([]float64, len(keys))
	for i, k := range keys {
		vals[i] = losses[k]
	}
	v := torch.FromFloat64(vals, int64(len(vals)))
	defer v.Free()
	if err := d.g.AllReduceMean([]*torch.Tensor{v}); err != nil {
		return fmt.Errorf("averaging losses: %w", err)
	}
	for i, m := range v.Float64s() {
		losses[keys[i]] = m
	}
	return nil
}

// OpenRank opens the run folder for a rank: rank 0 (or a process without
// a group) claims it as Open does; the other ranks only read the
// checkpoints rank 0 writes there.
func OpenRank(dir string, g Group) (*Run, error) {
	if g == nil || g.Rank() == 0 {
		return Open(dir)
	}
	return &Run{Dir: dir}, nil
}
