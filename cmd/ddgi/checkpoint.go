package main

import (
	"fmt"
	"os"

	"ddgi/train"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
)

// The checkpoint files the cmd/ddgi trainers (text, vae, diffusion) share
// in a run folder: model.safetensors, optim.safetensors, state.json.

// loadCheckpoint restores model and optimizer from a run folder at step
// and drops log rows the resumed run will repeat.
func loadCheckpoint(run *train.Run, store *nn.Store, opt *optim.Adam, step int64) error {
	if _, err := store.Load(run.Path("model.safetensors")); err != nil {
		return err
	}
	if err := opt.Load(run.Path("optim.safetensors"), torch.CPU); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "resuming %s at step %d\n", run.Dir, step)
	return run.TruncateLog(step)
}

// saveCheckpoint writes model (config in metadata), optimizer, loss plot
// and state.json; each file is atomic and state.json goes last.
func saveCheckpoint(run *train.Run, store *nn.Store, opt *optim.Adam, cfg, state any, title string) error {
	if err := store.Save(run.Path("model.safetensors"), nn.SaveOptions{Config: cfg}); err != nil {
		return err
	}
	if err := opt.Save(run.Path("optim.safetensors")); err != nil {
		return err
	}
	_ = run.PlotLosses(title)
	return run.SaveState(state)
}
