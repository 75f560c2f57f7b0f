package torchfile

import (
	"strings"
	"testing"
)

// FuzzOpen opens arbitrary bytes and reads every tensor found: errors are
// fine, panics and multi-line errors are not. Seeds in testdata/fuzz/FuzzOpen
// are fixtures from testdata.
func FuzzOpen(f *testing.F) {
	catch := catchPanics
	catchPanics = false // let a panic surface with its stack
	f.Cleanup(func() { catchPanics = catch })
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := openBytes(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		ts, err := Tensors(file.Root())
		if err != nil {
			return
		}
		for name, tn := range ts {
			st, err := tn.Read()
			if err != nil {
				continue
			}
			if err := st.Validate(); err != nil {
				t.Fatalf("%s: Read gave an invalid tensor: %v", name, err)
			}
		}
	})
}
