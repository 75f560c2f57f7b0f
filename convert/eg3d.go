package convert

import (
	"fmt"

	"ddgi/convert/torchfile"
)

// EG3DOptions tune an EG3D conversion.
type EG3DOptions struct {
	ConvClamp float64
}

// EG3D converts NVlabs' TriPlaneGenerator (not yet: see the issue notes).
func EG3D(src map[string]Source, net torchfile.Value, o EG3DOptions) (Generator, error) {
	return nil, fmt.Errorf("converting NVlabs EG3D pickles is not supported yet")
}
