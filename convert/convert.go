// Package convert turns public checkpoints (rosinality's and NVlabs'
// StyleGAN2, NVlabs' EG3D, …) into ddgi safetensors. Each foreign layout is
// one Table of rename rules, applied by Apply, which checks every key and
// shape and names what it could not place; models never see foreign names.
// Foreign files are read by the torchfile package, which runs no code.
package convert

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"ddgi/safetensors"
)

// Source is one tensor of a foreign checkpoint, read only when needed.
type Source interface {
	Shape() []int64
	Read() (safetensors.Tensor, error)
}

// Rule renames the foreign tensors whose whole name matches From.
type Rule struct {
	From *regexp.Regexp
	// To builds the ddgi name from From's submatches (m[0] is the whole
	// name); "" drops the tensor (fixed FIR filters, optimiser state, …).
	To func(m []string) string
	// Reshape lets the tensor take the target's shape when the two differ
	// only by dimensions of size 1 (rosinality's [1,O,I,k,k] conv weights).
	Reshape bool
	// Split, when set, is used instead of To: it names the ddgi tensors
	// that equal slices of the foreign one along dim 0 become, in order
	// ("" drops a slice). Fused projections (OpenAI's in_proj q/k/v) need it.
	Split func(m []string) []string
}

// Table is the rename rules of one layout; the first matching rule wins.
type Table struct {
	Name  string
	Rules []Rule
}

// rule is a Rule from a pattern (anchored) and a "$1"-style template; an
// empty template drops the tensor.
func rule(from, to string, reshape bool) Rule {
	re := regexp.MustCompile("^(?:" + from + ")$")
	r := Rule{From: re, Reshape: reshape}
	r.To = func(m []string) string {
		if to == "" {
			return ""
		}
		return string(re.ExpandString(nil, to, m[0], re.FindStringSubmatchIndex(m[0])))
	}
	return r
}

// drop is a rule that discards the tensors matching from.
func drop(from string) Rule { return rule(from, "", false) }

// Apply renames src by t onto the ddgi network whose tensor shapes are want
// (name → shape) and reads each kept tensor once (see Plan for the checks).
func Apply(t Table, src map[string]Source, want map[string][]int64) (map[string]safetensors.Tensor, error) {
	target, err := t.plan(shapesOf(src), want)
	if err != nil {
		return nil, err
	}
	read := map[string]safetensors.Tensor{} // split sources, read once for all slices
	out := make(map[string]safetensors.Tensor, len(target))
	for to, pl := range target {
		x, ok := read[pl.from]
		if !ok {
			if x, err = src[pl.from].Read(); err != nil {
				return nil, fmt.Errorf("%s: %w", pl.from, err)
			}
			if err := x.Validate(); err != nil {
				return nil, fmt.Errorf("%s: %w", pl.from, err)
			}
			if pl.parts > 1 {
				read[pl.from] = x
			}
		}
		if pl.parts > 1 { // row-major: a dim-0 slice is a contiguous run of bytes
			n := len(x.Data) / pl.parts
			x.Data = x.Data[pl.part*n : (pl.part+1)*n]
		}
		x.Shape = append([]int64(nil), want[to]...) // plan allowed only size-1 differences
		if err := x.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", pl.from, err)
		}
		out[to] = x
	}
	return out, nil
}

// placement is where a ddgi tensor comes from: a foreign tensor, or slice
// part of parts of it along dim 0.
type placement struct {
	from        string
	part, parts int
}

// Plan maps foreign tensor names (with their shapes) onto ddgi's names and
// returns ddgi name → foreign name. Every foreign name must match a rule,
// every ddgi name must be produced exactly once, and shapes must agree (up
// to size-1 dimensions where the rule allows): otherwise the error lists
// every unknown, missing, duplicated or mis-shaped key.
// A split rule's slices are checked like whole tensors.
func (t Table) Plan(src, want map[string][]int64) (map[string]string, error) {
	target, err := t.plan(src, want)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(target))
	for to, pl := range target {
		out[to] = pl.from
	}
	return out, nil
}

func (t Table) plan(src, want map[string][]int64) (map[string]placement, error) {
	var unknown, unexpected, clash, badShape []string
	target := map[string]placement{} // ddgi name → foreign tensor (slice)
	for _, name := range sortedKeys(src) {
		r, m := t.match(name)
		if m == nil {
			unknown = append(unknown, name)
			continue
		}
		got := src[name]
		tos := []string{""}
		if r.Split != nil {
			tos = r.Split(m)
			if n := int64(len(tos)); len(got) == 0 || n == 0 || got[0]%n != 0 {
				badShape = append(badShape, fmt.Sprintf("%s %v does not split in %d along dim 0", name, got, len(tos)))
				continue
			}
			got = append([]int64{got[0] / int64(len(tos))}, got[1:]...)
		} else {
			tos[0] = r.To(m)
		}
		for i, to := range tos {
			if to == "" {
				continue
			}
			shape, ok := want[to]
			switch {
			case !ok:
				unexpected = append(unexpected, fmt.Sprintf("%s → %s", name, to))
				continue
			case target[to].from != "":
				clash = append(clash, fmt.Sprintf("%s and %s → %s", target[to].from, name, to))
				continue
			}
			if !slices.Equal(got, shape) && !(r.Reshape && sameSqueezed(got, shape)) {
				badShape = append(badShape, fmt.Sprintf("%s %v → %s %v", name, got, to, shape))
			}
			target[to] = placement{from: name, part: i, parts: len(tos)}
		}
	}
	var missing []string
	for name := range want {
		if target[name].from == "" {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	var problems []string
	for _, p := range []struct {
		what  string
		names []string
	}{
		{"foreign tensors no rule places", unknown},
		{"renamed to names the network lacks", unexpected},
		{"placed twice", clash},
		{"shapes that do not fit", badShape},
		{"network tensors the file lacks", missing},
	} {
		if len(p.names) > 0 {
			problems = append(problems, fmt.Sprintf("%d %s: %s", len(p.names), p.what, list(p.names)))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s layout: %s", t.Name, strings.Join(problems, "; "))
	}
	return target, nil
}

func (t Table) match(name string) (Rule, []string) {
	for _, r := range t.Rules {
		if m := r.From.FindStringSubmatch(name); m != nil {
			return r, m
		}
	}
	return Rule{}, nil
}

// list shows up to 8 names, then a count.
func list(names []string) string {
	if len(names) > 8 {
		return strings.Join(names[:8], ", ") + fmt.Sprintf(", … (%d more)", len(names)-8)
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sameSqueezed compares shapes with their size-1 dimensions removed.
func sameSqueezed(a, b []int64) bool { return slices.Equal(squeeze(a), squeeze(b)) }

func squeeze(s []int64) []int64 {
	var out []int64
	for _, d := range s {
		if d != 1 {
			out = append(out, d)
		}
	}
	return out
}

// atoi parses a submatch the pattern guarantees to be digits.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic("convert: rule pattern let a non-number through: " + s)
	}
	return n
}
