package data

import (
	"bytes"
	"fmt"
	"image"
)

// Check reads only the header of an image in memory and reports it beyond
// l (a server holds uploads to a smaller budget than the command line).
func (l ImageLimits) Check(name string, b []byte) error {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: not a readable image: %w", name, err)
	}
	if err := l.check(cfg); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
