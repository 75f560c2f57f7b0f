// Package kinds names the two choices every stage of ddgi shares: the
// visual condition (segmentation mask or scribble) and the GAN
// architecture (StyleGAN2 or EG3D). It imports nothing from ddgi so any
// package can use it. Both are string types whose values are the exact
// bytes the flags, JSON fields, state files and weight file names use.
package kinds

import (
	"fmt"
	"strings"
)

// Cond is the visual condition a face is generated from.
type Cond string

// The condition kinds, one ControlNet branch and inversion network each.
const (
	Mask     Cond = "mask"
	Scribble Cond = "scribble"
)

// Conds lists every condition in the order ddgi reports them.
var Conds = []Cond{Mask, Scribble}

// ParseCond accepts "mask" or "scribble".
func ParseCond(s string) (Cond, error) {
	for _, c := range Conds {
		if s == string(c) {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown condition %q (want %s)", s, join(Conds))
}

// GANArch is the generator architecture a face is inverted into.
type GANArch string

// The GAN architectures: 2D StyleGAN2 and 3D-aware EG3D.
const (
	StyleGAN2 GANArch = "stylegan2"
	EG3D      GANArch = "eg3d"
)

// GANArchs lists every architecture in the order ddgi reports them.
var GANArchs = []GANArch{StyleGAN2, EG3D}

// ParseGANArch accepts "stylegan2" or "eg3d".
func ParseGANArch(s string) (GANArch, error) {
	for _, a := range GANArchs {
		if s == string(a) {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown GAN %q (want %s)", s, join(GANArchs))
}

// join lists vs as "a or b" ("a, b or c" for more).
func join[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
