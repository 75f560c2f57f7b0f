package main

import (
	"fmt"
	"runtime"

	"ddgi/torch"
)

func init() {
	register(command{name: "version", summary: "print ddgi, Go and libtorch versions and the compute devices", run: runVersion})
}

func runVersion(args []string) error {
	fs := newFlags("version", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cuda := "no"
	if torch.CUDAAvailable() {
		cuda = "yes"
	}
	blas := ""
	if c := torch.BLASCore(); c != "" {
		blas = ", OpenBLAS kernels: " + c
	}
	fmt.Printf("ddgi %s\ngo %s %s/%s\nlibtorch %s (CUDA: %s, threads: %d%s, linear layers in inference: %s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH, torch.Version(), cuda, torch.Threads(), blas, torch.LinearKernel())
	return nil
}
