package kinds

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range Conds {
		if got, err := ParseCond(string(c)); err != nil || got != c {
			t.Errorf("ParseCond(%q) = %q, %v", c, got, err)
		}
	}
	for _, a := range GANArchs {
		if got, err := ParseGANArch(string(a)); err != nil || got != a {
			t.Errorf("ParseGANArch(%q) = %q, %v", a, got, err)
		}
	}
	if _, err := ParseCond("sketch"); err == nil || !strings.Contains(err.Error(), "(want mask or scribble)") || strings.Contains(err.Error(), "\n") {
		t.Errorf("ParseCond(sketch) error %v; want one line listing mask or scribble", err)
	}
	if _, err := ParseGANArch("biggan"); err == nil || !strings.Contains(err.Error(), "(want stylegan2 or eg3d)") {
		t.Errorf("ParseGANArch(biggan) error %v; want the valid list", err)
	}
	if _, err := ParseCond("Mask"); err == nil {
		t.Error("ParseCond is case-sensitive: file names and JSON use lower case")
	}
}

// The JSON bytes must stay those of a plain string: state files and API
// answers written before this type existed must read back the same.
func TestJSONBytes(t *testing.T) {
	b, err := json.Marshal(struct {
		C Cond    `json:"cond"`
		G GANArch `json:"gan"`
	}{Scribble, EG3D})
	if err != nil || string(b) != `{"cond":"scribble","gan":"eg3d"}` {
		t.Fatalf("got %s, %v", b, err)
	}
}
