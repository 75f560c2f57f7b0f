package train

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"ddgi/nn"
	"ddgi/optim"
)

// The files of a checkpoint of one network trained by one Adam (the text
// encoder, the VAE), beside StateFile.
const (
	FileModel = "model.safetensors" // the network, its config in the metadata
	FileOptim = "optim.safetensors" // the optimizer state
)

// SaveModel writes store (cfg in its metadata), opt and state into the
// checkpoint folder dir: a Job's Save.
func SaveModel(dir string, store *nn.Store, cfg any, opt *optim.Adam, state any) error {
	if err := store.Save(filepath.Join(dir, FileModel), nn.SaveOptions{Config: cfg}); err != nil {
		return err
	}
	if err := opt.Save(filepath.Join(dir, FileOptim)); err != nil {
		return err
	}
	return WriteState(dir, state)
}

// LoadModel restores a checkpoint SaveModel wrote: a Job's Load. The saved
// state must belong to this run (same reports whether it does; it may
// differ in what a step changes), then the weights go into store and opt
// and the saved state into *st.
func LoadModel[S any](dir string, store *nn.Store, opt *optim.Adam, st *S, same func(saved S) bool) error {
	var saved S
	if err := ReadState(dir, &saved); err != nil {
		return err
	}
	if !same(saved) {
		return fmt.Errorf("%s belongs to another run (state %+v, want %+v)", dir, saved, *st)
	}
	if _, err := store.Load(filepath.Join(dir, FileModel)); err != nil {
		return err
	}
	if err := opt.Load(filepath.Join(dir, FileOptim), store.Device); err != nil {
		return err
	}
	*st = saved
	return nil
}

// Messages is where a trainer writes its messages: out (nil: stderr), or
// nowhere when quiet.
func Messages(out io.Writer, quiet bool) io.Writer {
	switch {
	case quiet:
		return io.Discard
	case out == nil:
		return os.Stderr
	}
	return out
}
