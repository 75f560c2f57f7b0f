package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"ddgi/dist"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
	"ddgi/train"
)

// rankSteps times the same training step as goSteps run as n data-parallel
// ranks of one thread each (ddgi train --nproc n: c10d/Gloo on loopback,
// the global batch of 8 split over the ranks, gradients averaged with the
// all-reduce overlapping backward). Each rank's thread waits for the others
// once a step, at the all-reduce, instead of at every op as the threads of
// one OpenMP team do. It returns rank 0's steps/s.
func rankSteps(n, steps, warm int) (float64, error) {
	var out bytes.Buffer
	err := dist.Launch(context.Background(), n, []string{"-rank-worker", strconv.Itoa(steps), strconv.Itoa(warm)},
		dist.LaunchOptions{Timeout: 2 * time.Minute, Stdout: &out})
	if err != nil {
		return 0, fmt.Errorf("%d ranks: %w", n, err)
	}
	var r peerResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return 0, fmt.Errorf("%d ranks: rank 0 printed %q: %w", n, out.String(), err)
	}
	return r.StepsPerS, nil
}

// rankWorker is one rank of rankSteps (the -rank-worker mode); it runs
// with one thread whatever DDGI_THREADS the launcher passed on.
func rankWorker(steps, warm int) error {
	c, ok, err := dist.FromEnv()
	if err != nil || !ok {
		return fmt.Errorf("rank worker outside a group: %v", err)
	}
	g, err := dist.Join(c)
	if err != nil {
		return err
	}
	defer g.Close()
	torch.SetThreads(1)
	s := nn.NewStore(torch.CPU, 0)
	net := newConvNet(s)
	var params []*torch.Tensor
	for _, p := range s.Trainable() {
		params = append(params, p.T)
	}
	if err := g.Broadcast(params); err != nil {
		return err
	}
	opt := optim.NewAdam(optim.DefaultAdam(1e-3))
	const batch = 8
	lo, n := train.Shard{Rank: g.Rank(), Size: g.Size()}.Rows(batch)
	x := torch.Randn(torch.NewGenerator(0), []int64{batch, 3, 32, 32}, torch.Float32, torch.CPU).Narrow(0, int64(lo), int64(n))
	torch.Persist(x)
	var stepErr error
	step := func() {
		sc := torch.NewScope()
		loss := net.forward(x).Square().MeanAll()
		sc.FreeExcept(loss)
		if err := g.Backward(loss, params, true); err != nil && stepErr == nil {
			stepErr = err
		}
		opt.Update(s.Trainable())
		sc.Close()
	}
	for i := 0; i < warm; i++ {
		step()
	}
	if err := g.Barrier(); err != nil {
		return err
	}
	t0 := time.Now()
	for i := 0; i < steps; i++ {
		step()
	}
	if err := g.Barrier(); err != nil {
		return err
	}
	rate := float64(steps) / time.Since(t0).Seconds()
	if stepErr != nil {
		return stepErr
	}
	if g.Rank() == 0 {
		return json.NewEncoder(os.Stdout).Encode(peerResult{StepsPerS: rate})
	}
	return nil
}
